import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { APIResponse, Browser, BrowserContext, Page, Route } from 'playwright-core';
import { chromiumUnavailable, countColour, decodePng, launchChromiumWithBackForwardCache, launchChromiumWithProfile, startHubAndChromium } from '../support/browser';
import { tempDataDir, type HubProcess } from '../support/hub-process';
import { problem } from '../../src/adapters/http/problem';

/**
 * The patient's review page in a real browser (Debian's chromium via playwright-core) against the built hub:
 * enter a CPR number, upload through the form, see the reading in the table and as points in the graph, get
 * a clear message for bad input (the page's own checks and the hub's refusals), by keyboard alone, on a
 * phone-sized screen, with no request leaving 127.0.0.1 and the CPR number never in the page's URL.
 */
// The callbacks given to page.evaluate run in the browser; tsconfig has no DOM lib, so the few globals they use
// are named here (types only, nothing is emitted).
type El = {
  id: string;
  hidden: boolean;
  textContent: string | null;
  getAttribute(name: string): string | null;
  hasAttribute(name: string): boolean;
  querySelector(selector: string): El | null;
  querySelectorAll(selector: string): Iterable<El> & ArrayLike<El>;
  getBoundingClientRect(): { right: number };
};
declare const document: {
  dispatchEvent(event: Event): boolean;
  activeElement: El | null;
  documentElement: { scrollWidth: number; lang: string };
  getElementById(id: string): El | null;
  querySelector(selector: string): El | null;
  querySelectorAll(selector: string): Iterable<El> & ArrayLike<El>;
};
declare const getComputedStyle: (element: El) => { outlineStyle: string };
declare const sessionStorage: { length: number; key(i: number): string | null; getItem(key: string): string | null; setItem(key: string, value: string): void };
declare const location: { hash: string; href: string };
declare class Event {
  constructor(type: string);
}

const CPR = '251248-1234';
const SYS_COLOUR = '#b3261e';
const DIA_COLOUR = '#1a5fb4';
const SHOTS = join(tmpdir(), 'telemed-web-e2e');

// One line, then skip, where Chromium is missing; under CI (.ci/run installs it) a missing one fails instead.
/**
 * Routes the page's uploads (POST /observations) and keeps their bodies, in order, in the list returned. The first
 * upload's answer is `first`'s to give: after the hub has stored it, or, with `reachesHub: false`, instead of the hub.
 * The later uploads get the hub's own answers.
 */
const routeUploads = async (page: Page, first: (route: Route, response: APIResponse | null) => Promise<void>, { reachesHub = true } = {}): Promise<string[]> => {
  const bodies: string[] = [];
  await page.route('**/observations', async (route) => {
    bodies.push(route.request().postData() ?? '');
    if (bodies.length > 1) return route.fulfill({ response: await route.fetch() });
    return first(route, reachesHub ? await route.fetch() : null);
  });
  return bodies;
};

const noBrowser = chromiumUnavailable();
if (noBrowser) console.warn(`web e2e skipped: ${noBrowser}`);
const describeWeb = noBrowser ? describe.skip : describe;

describeWeb(`the review page (HomeClient on the web${noBrowser ? `, skipped: ${noBrowser}` : ''})`, () => {
  const data = tempDataDir('rts-web-e2e-');
  let hub: HubProcess;
  let browser: Browser;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    ({ hub, browser } = await startHubAndChromium(data.dir));
  });

  afterAll(async () => {
    await browser?.close();
    await hub?.stop();
    data.remove();
  });

  type Watched = Readonly<{ context: BrowserContext; page: Page; requests: string[]; urls: string[]; problems: string[]; posts(): number }>;

  /** A fresh tab that records every request, every URL the page had, and CSP violations or script errors. */
  /**
   * Counts, in the page's `searched`, each answer of a readings search once the page's own handling of it has run (a
   * task after its body is read).
   */
  const countSearches = async (p: Page): Promise<void> => {
    await p.addInitScript(() => {
      const g = globalThis as unknown as { fetch: (...a: unknown[]) => Promise<{ url: string; json(): Promise<unknown> }>; searched: number };
      const original = g.fetch.bind(g);
      g.searched = 0;
      g.fetch = async (...a: unknown[]) => {
        const res = await original(...a);
        if (!/\/observations\/search$/.test(res.url)) return res;
        const json = res.json.bind(res);
        res.json = () => json().finally(() => setTimeout(() => g.searched++, 0));
        return res;
      };
    });
  };

  const open = async (viewport = { width: 1024, height: 800 }, before?: (page: Page) => Promise<void>, timezoneId = 'Europe/Copenhagen'): Promise<Watched> => {
    const context = await browser.newContext({ viewport, locale: 'en-GB', timezoneId });
    const page = await context.newPage();
    await before?.(page);
    const requests: string[] = [];
    const urls: string[] = [];
    const problems: string[] = [];
    let posts = 0;
    page.on('request', (r) => {
      requests.push(r.url());
      if (r.method() === 'POST' && r.url().endsWith('/observations')) posts++;
    });
    page.on('framenavigated', (f) => urls.push(f.url()));
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 404/.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    await page.goto(`${hub.url}/`);
    return { context, page, requests, urls, problems, posts: () => posts };
  };

  const enterCpr = async (page: Page, cpr = CPR): Promise<void> => {
    await page.fill('#cpr', cpr);
    await page.click('#cpr-form button[type=submit]');
    await page.waitForSelector('#review:not([hidden])');
    await page.waitForFunction(() => /reading/.test(document.getElementById('period')!.textContent ?? ''));
  };

  /** A datetime-local value `daysAgo` days before now at hh:mm in the page's own time zone. */
  const localTime = (page: Page, daysAgo: number, hh = 9, mm = 15): Promise<string> =>
    page.evaluate(
      ([d, h, m]) => {
        const x = new Date(Date.now() - d! * 86_400_000);
        x.setHours(h!, m!, 0, 0);
        const p = (n: number) => String(n).padStart(2, '0');
        return `${x.getFullYear()}-${p(x.getMonth() + 1)}-${p(x.getDate())}T${p(x.getHours())}:${p(x.getMinutes())}`;
      },
      [daysAgo, hh, mm],
    );

  const upload = async (page: Page, systolic: string, diastolic: string, at = ''): Promise<void> => {
    await page.fill('#systolic', systolic);
    await page.fill('#diastolic', diastolic);
    await page.fill('#measured', at);
    await page.click('#upload-btn');
  };

  const waitSaved = (page: Page): Promise<unknown> =>
    page.waitForFunction(() => /^Saved/.test(document.getElementById('upload-status')!.textContent ?? '') && !document.getElementById('upload-btn')!.hasAttribute('disabled'));

  const rows = (page: Page): Promise<string[][]> =>
    page.$$eval('#readings tbody tr', (trs) => trs.filter((tr) => !tr.querySelector('.empty')).map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')));

  const markers = (page: Page) =>
    page.evaluate(() => ({
      sys: [...document.querySelectorAll('#chart circle.pt.sys')].map((c) => ({ v: Number(c.getAttribute('data-value')), x: Number(c.getAttribute('cx')), y: Number(c.getAttribute('cy')) })),
      dia: [...document.querySelectorAll('#chart rect.pt.dia')].map((c) => ({ v: Number(c.getAttribute('data-value')), x: Number(c.getAttribute('x')), y: Number(c.getAttribute('y')) })),
      label: document.querySelector('#chart svg')?.getAttribute('aria-labelledby') ?? '',
      desc: document.querySelector('#chart svg desc')?.textContent ?? '',
    }));

  /** A patient's token from the hub's local dev login, as a sign-in page would hand it over. */
  const patientToken = async (cpr: string): Promise<string> => {
    const res = await fetch(`${hub.url}/auth/dev-login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ role: 'patient', patient: cpr }) });
    return ((await res.json()) as { token: string }).token;
  };

  /** Answer the readings request with a problem+json of this status, as a hub in trouble would. */
  const refuseReadings = (page: Page, status: number, body: object, headers: Record<string, string> = {}): Promise<unknown> =>
    page.route('**/observations/search', (route) => route.fulfill({ status, contentType: 'application/problem+json', headers, body: JSON.stringify({ status, ...body }) }));

  /** A hub without the local dev login (any hub not on loopback) answers it with 404. */
  const noDevLogin = (page: Page): Promise<unknown> => page.route('**/auth/dev-login', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{}' }));

  const cprError = (page: Page): Promise<string> =>
    page.waitForFunction(() => !document.getElementById('cpr-error')!.hidden).then(async () => (await page.textContent('#cpr-error')) ?? '');

  /** A problem the CPR form has that is not the number's (no sign-in, too many requests): said for the form, the field unmarked. */
  const formProblem = (page: Page, after = ''): Promise<string> =>
    page
      .waitForFunction((before) => {
        const t = document.getElementById('who-status')!.textContent ?? '';
        return t && t !== before && !/Loading/.test(t);
      }, after)
      .then(async () => {
        expect(await page.getAttribute('#cpr', 'aria-invalid')).toBeNull();
        return (await page.textContent('#who-status')) ?? '';
      });

  const errorOf = async (page: Page, field: string) =>
    page.evaluate((f) => {
      const input = document.getElementById(f)!;
      const err = document.getElementById(`${f}-error`)!;
      return {
        invalid: input.getAttribute('aria-invalid'),
        describedBy: (input.getAttribute('aria-describedby') ?? '').split(' '),
        text: err.hidden ? '' : (err.textContent ?? ''),
      };
    }, field);

  const expectClean = (w: Watched, expected: RegExp[] = []): void => {
    expect(w.problems.filter((p) => !expected.some((e) => e.test(p)))).toEqual([]);
    expect(w.requests.filter((u) => !u.startsWith(`${hub.url}/`) && !u.startsWith('data:'))).toEqual([]);
    // No CPR number in any URL: not the page's, not a request's (readings are asked for with POST /observations/search,
    // the number in the body; a URL is kept in proxies' access logs).
    for (const u of [...w.urls, w.page.url(), ...w.requests]) {
      expect(u).not.toContain('251248');
      expect(decodeURIComponent(u)).not.toMatch(/\d{6}-?\d{4}/);
    }
  };

  it('serves the page and its assets with their types, cache headers and a strict CSP', async () => {
    const root = await fetch(`${hub.url}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('app/'); // relative: the hub may be served under a path prefix

    const page = await fetch(`${hub.url}/app/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const csp = page.headers.get('content-security-policy') ?? '';
    for (const d of ["default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "frame-ancestors 'none'"]) expect(csp).toContain(d);
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('referrer-policy')).toBe('no-referrer');
    const html = await page.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i); // no inline script
    expect(html).not.toMatch(/\sstyle=|<style|\son[a-z]+=/i); // no inline style or handler
    expect(html).not.toMatch(/https?:\/\//); // no CDN, no external font

    const again = await fetch(`${hub.url}/app/`, { headers: { 'if-none-match': page.headers.get('etag')! } });
    expect(again.status).toBe(304);

    for (const [name, type] of [['app.js', 'text/javascript; charset=utf-8'], ['app.css', 'text/css; charset=utf-8']] as const) {
      const version = new RegExp(`"${name.replace('.', '\\.')}\\?v=([\\w-]+)`).exec(html)?.[1];
      expect(version).toBeTruthy();
      const versioned = await fetch(`${hub.url}/app/${name}?v=${version}`);
      expect(versioned.headers.get('content-type')).toBe(type);
      expect(versioned.headers.get('cache-control')).toContain('immutable');
      expect(versioned.headers.get('content-security-policy')).toBe(csp);
      const body = await versioned.text();
      expect(Buffer.byteLength(body)).toBeLessThan(48 * 1024); // plain and small (with its comments; 28 KB before the accessibility audit's fixes, 40 KB before a 5xx was said in plain words, 42 KB before erasure, late answers and full-width digits, 44 KB before the years of a reading's time and Change person during an upload, 46 KB before the draft bound to its attempt and every script's digits)
      const bare = await fetch(`${hub.url}/app/${name}`);
      expect(bare.headers.get('cache-control')).toBe('no-cache');
    }
  });

  it('shows an empty state for a new patient, then each uploaded reading in the table and as points in the graph', async () => {
    const w = await open();
    const { page } = w;
    expect(page.url()).toBe(`${hub.url}/app/`);
    await enterCpr(page);
    // sessionStorage goes to the browser profile on disk: no CPR number there, not even beside a dev-login token.
    const kept = await page.evaluate(() => Array.from({ length: sessionStorage.length }, (_, i) => `${sessionStorage.key(i)}=${sessionStorage.getItem(sessionStorage.key(i)!)}`).join('\n'));
    expect(kept).not.toMatch(/251248-?1234/);
    // A patient with nothing stored: the hub says unknown_patient (404); the page shows an empty period, no error.
    expect(await page.textContent('#period')).toMatch(/^No readings from/);
    expect(await page.isHidden('#load-error')).toBe(true);
    expect((await markers(page)).sys).toHaveLength(0);

    await upload(page, '126', '70');
    await waitSaved(page);
    expect(await rows(page)).toEqual([[expect.any(String), '126', '70']]);
    let m = await markers(page);
    expect(m.sys.map((p) => p.v)).toEqual([126]);
    expect(m.dia.map((p) => p.v)).toEqual([70]);

    await upload(page, '141', '92', await localTime(page, 2));
    await waitSaved(page);
    await upload(page, '118', '76', await localTime(page, 4));
    await waitSaved(page);
    const table = await rows(page);
    expect(table.map((r) => r.slice(1))).toEqual([['126', '70'], ['141', '92'], ['118', '76']]); // newest first
    m = await markers(page);
    expect(m.sys).toHaveLength(3);
    expect(m.dia).toHaveLength(3);
    // Different values and times sit at different places; a higher pressure is drawn higher (smaller y).
    const bySys = new Map(m.sys.map((p) => [p.v, p]));
    expect(bySys.get(141)!.y).toBeLessThan(bySys.get(126)!.y);
    expect(bySys.get(126)!.y).toBeLessThan(bySys.get(118)!.y);
    expect(bySys.get(118)!.x).toBeLessThan(bySys.get(141)!.x);
    expect(bySys.get(141)!.x).toBeLessThan(bySys.get(126)!.x);
    expect(Math.min(...m.sys.map((p) => p.y))).toBeLessThan(Math.min(...m.dia.map((p) => p.y)));
    // The graph has a text alternative summarising it.
    expect(m.label).toBe('chart-title'); // named by its title, described by its summary (aria-describedby)
    expect(m.desc).toMatch(/^3 readings .*Systolic 118 to 141 mmHg, diastolic 70 to 92 mmHg/);
    expectClean(w);
    await w.context.close();
  });

  it('refuses bad input with a message next to the field, before anything is sent', async () => {
    const w = await open();
    const { page } = w;
    await page.fill('#cpr', '12345');
    await page.click('#cpr-form button[type=submit]');
    expect((await errorOf(page, 'cpr')).text).toMatch(/six digits, a hyphen and four digits/i);
    expect((await errorOf(page, 'cpr')).invalid).toBe('true');
    await enterCpr(page);

    const cases: [string, string, string, RegExp][] = [
      ['110', '120', 'systolic', /Systolic must be higher than diastolic/],
      ['', '80', 'systolic', /Enter the systolic pressure/],
      ['130', '', 'diastolic', /Enter the diastolic pressure/],
      ['400', '80', 'systolic', /between 50 and 300 mmHg/],
      ['130', '10', 'diastolic', /between 20 and 200 mmHg/],
      ['12x', '80', 'systolic', /must be a number/],
    ];
    for (const [s, d, field, message] of cases) {
      await upload(page, s, d);
      const e = await errorOf(page, field);
      expect(e.text).toMatch(message);
      expect(e.invalid).toBe('true');
      expect(e.describedBy).toContain(`${field}-error`);
      expect(await page.evaluate(() => document.activeElement?.id)).toBe(field); // focus goes to the field to fix
      // The same message as the case before is emptied and written again a moment later, so that it is said again.
      await page.waitForFunction(() => /Please correct/.test(document.getElementById('upload-status')!.textContent ?? ''));
    }
    expect(w.posts()).toBe(0);
    // Typing into a marked field clears its mark.
    await page.fill('#systolic', '120');
    expect((await errorOf(page, 'systolic')).invalid).toBeNull();
    expectClean(w);
    await w.context.close();
  });

  it("shows the hub's refusals: a time in the future next to the time field, a CPR number that is no real date next to the CPR field", async () => {
    const w = await open();
    const { page } = w;
    // The page checks the form of a CPR number; the hub checks that its digits are a real date (30 February is not).
    await page.fill('#cpr', '300248-1234');
    await page.click('#cpr-form button[type=submit]');
    await page.waitForFunction(() => !document.getElementById('cpr-error')!.hidden);
    expect((await errorOf(page, 'cpr')).text).toMatch(/^The first six digits of this CPR number are not a real date/);
    expect(await page.isHidden('#review')).toBe(true);

    await enterCpr(page, '050607-1234');
    // The hub's clock decides what lies in the future; the page leaves that check to it.
    await upload(page, '130', '85', await localTime(page, -2));
    await page.waitForFunction(() => !document.getElementById('measured-error')!.hidden);
    const e = await errorOf(page, 'measured');
    expect(e.text).toMatch(/^This time is later than now\. Check the date and the time, or leave the field empty/);
    expect(e.invalid).toBe('true');
    expect(await page.textContent('#upload-status')).toMatch(/^Not saved\. Please correct the time of reading/);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('measured');
    expect(w.posts()).toBe(1);
    expect(await rows(page)).toEqual([]);

    // A CPR number whose birth date lies in the future (born 2037 by the century rule): said of the CPR number, as
    // soon as it is entered (the search answers 422 invalid_patient_id as an upload would, not "no readings yet").
    await page.click('#forget');
    await page.fill('#cpr', '010137-5234');
    await page.click('#cpr-form button[type=submit]');
    await page.waitForFunction(() => /lies in the future/.test(document.getElementById('cpr-error')!.textContent ?? ''));
    expect((await errorOf(page, 'cpr')).text).toBe('The birth date in this CPR number (its first six digits) lies in the future. Check the digits, e.g. on your health insurance card.');
    expect(await page.isHidden('#review')).toBe(true);
    expectClean(w, [/status of (422|400)/]); // the refusals this test asked for
    await w.context.close();
  });

  // A reading the hub refused (422: a time in the future) was not stored, and never will be as it is: its draft stayed
  // in sessionStorage, and after a reload it came back as "may not be saved yet. Press Upload to send it again".
  it('does not bring a reading the hub refused back after a reload as one that may not be saved yet', async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '170512-1234');
    await upload(page, '130', '85', await localTime(page, -2));
    await page.waitForFunction(() => /^Not saved\. Please correct the time of reading/.test(document.getElementById('upload-status')!.textContent ?? ''));
    expect(await page.evaluate(() => sessionStorage.getItem('telemed.draft'))).toBeNull();
    await page.reload();
    await enterCpr(page, '170512-1234');
    expect(await page.textContent('#upload-status')).toBe('');
    expect([await page.inputValue('#systolic'), await page.inputValue('#diastolic'), await page.inputValue('#measured')]).toEqual(['', '', '']);
    expect(w.posts()).toBe(1);
    expectClean(w, [/status of 422/]); // the refusal this test asked for
    await w.context.close();
  });

  // Refused by the hub is nothing stored; a 400 from something in front of it (a proxy's page) says nothing of the
  // first attempt, whose answer was lost after the hub stored it: the draft is what makes a resend store it only once.
  it("keeps the draft of a reading whose answer was lost when the resend meets a 400 that is not the hub's", async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '150505-4321');
    let sent = 0;
    await page.route('**/observations', async (route) => {
      sent++;
      if (sent === 1) {
        await route.fetch(); // stored by the hub, its answer lost
        return route.abort('connectionreset');
      }
      if (sent === 2) return route.fulfill({ status: 400, contentType: 'text/html', body: '<html><body>400 Bad Request</body></html>' });
      return route.fulfill({ response: await route.fetch() });
    });
    await upload(page, '131', '83');
    await page.waitForFunction(() => /cannot be reached/.test(document.getElementById('upload-status')!.textContent ?? ''));
    const draft = await page.evaluate(() => sessionStorage.getItem('telemed.draft'));
    expect(draft).not.toBeNull();
    await page.click('#upload-btn');
    await page.waitForFunction(() => !document.getElementById('upload-btn')!.getAttribute('aria-disabled') && /./.test(document.getElementById('upload-status')!.textContent ?? '') && !/Uploading/.test(document.getElementById('upload-status')!.textContent ?? ''));
    expect(sent).toBe(2);
    expect(await page.evaluate(() => sessionStorage.getItem('telemed.draft'))).toBe(draft);
    // Sent again as it is, it is the stored reading, once.
    await page.click('#upload-btn');
    await waitSaved(page);
    expect(await rows(page)).toEqual([[expect.any(String), '131', '83']]);
    expectClean(w, [/ERR_CONNECTION_RESET/, /status of 400/]); // the answers this test made
    await w.context.close();
  });

  it('stores a reading once when its answer is lost and the patient presses upload again', async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '010203-4567');
    // The hub stores it, but the answer never arrives, and the retry comes in a later second: the reading has no time
    // of its own, so the hub's "now" differs between the two (this was refused as another reading, 409, once).
    const bodies = await routeUploads(page, async (route) => {
      await new Promise((r) => setTimeout(r, 1_100));
      return route.abort('connectionreset');
    });
    await upload(page, '133', '84');
    await page.waitForFunction(() => /cannot be reached/.test(document.getElementById('upload-status')!.textContent ?? ''));
    // Stored, its answer lost: never "not saved", which sent a patient to type it in again later (stored twice).
    expect({ title: await page.title(), said: await page.textContent('#upload-status') }).toEqual({
      title: expect.stringMatching(/^Error: reading may not be saved/),
      said: expect.stringMatching(/may or may not be saved\. Press Upload again as it is: it will be stored only once\. Changed, even back to the same values, it is saved as a new reading\.$/),
    });
    await page.click('#upload-btn');
    await waitSaved(page);
    const ids = bodies.map((b) => JSON.parse(b).observationId as string);
    expect(ids).toHaveLength(2);
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(ids[1]).toBe(ids[0]);
    expect(await rows(page)).toEqual([[expect.any(String), '133', '84']]);
    // A new reading after that gets a new id.
    await upload(page, '128', '80');
    await waitSaved(page);
    expect(JSON.parse(bodies[2]!).observationId).not.toBe(ids[0]);
    expect(await rows(page)).toHaveLength(2);
    expectClean(w, [/ERR_CONNECTION_RESET/]); // the answer this test dropped
    await w.context.close();
  });

  /** Holds each upload until the test answers it: next() gives the waiting one's answer, lost (true) or the hub's. */
  const holdUploads = async (page: Page) => {
    const bodies: string[] = [];
    const waiting: Array<(answer: (lose: boolean) => void) => void> = [];
    const held: Array<(lose: boolean) => void> = [];
    await page.route('**/observations', async (route) => {
      bodies.push(route.request().postData() ?? '');
      const lose = await new Promise<boolean>((answer) => {
        const w = waiting.shift();
        if (w) w(answer);
        else held.push(answer);
      });
      const response = await route.fetch(); // the hub stores it...
      return lose ? route.abort('connectionreset') : route.fulfill({ response }); // ...and its answer is lost, or not
    });
    const next = (): Promise<(lose: boolean) => void> => new Promise((resolve) => (held.length ? resolve(held.shift()!) : waiting.push(resolve)));
    return { bodies, next };
  };

  // An upload waits up to a minute for its answer. What the patient typed meanwhile was wiped by the answer's reset
  // of the form; and typing dropped the draft on its way, so after a lost answer "Press Upload again: it will be
  // stored only once" sent the reading with a new id (stored twice).
  it('keeps the reading fields read-only while an upload waits for its answer, the focus where it was', async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '050607-4567');
    const uploads = await holdUploads(page);
    const typedMeanwhile = async (): Promise<unknown> => {
      await page.focus('#systolic');
      await page.keyboard.type('9');
      await page.focus('#diastolic');
      await page.keyboard.press('Backspace');
      return page.evaluate(() => ({
        values: ['systolic', 'diastolic'].map((f) => (document.getElementById(f) as unknown as { value: string }).value),
        readOnly: ['systolic', 'diastolic', 'measured'].map((f) => (document.getElementById(f) as unknown as { readOnly: boolean }).readOnly),
        busy: ['systolic', 'diastolic', 'measured'].map((f) => document.getElementById(f)!.getAttribute('aria-busy')),
        focus: document.activeElement?.id,
      }));
    };
    const locked = { values: ['135', '85'], readOnly: [true, true, true], busy: ['true', 'true', 'true'], focus: 'diastolic' };
    await upload(page, '135', '85');
    await page.waitForFunction(() => /Uploading/.test(document.getElementById('upload-status')!.textContent ?? ''));
    expect(await typedMeanwhile()).toEqual(locked);
    (await uploads.next())(true); // its answer is lost
    await page.waitForFunction(() => /cannot be reached/.test(document.getElementById('upload-status')!.textContent ?? ''));
    expect(await page.evaluate(() => ['systolic', 'diastolic', 'measured'].map((f) => [(document.getElementById(f) as unknown as { readOnly: boolean }).readOnly, document.getElementById(f)!.getAttribute('aria-busy')]))).toEqual([[false, null], [false, null], [false, null]]);
    // Upload again: the same attempt, its id kept; typed into meanwhile, it went out with a new one.
    await page.click('#upload-btn');
    await page.waitForFunction(() => /Uploading/.test(document.getElementById('upload-status')!.textContent ?? ''));
    expect(await typedMeanwhile()).toEqual(locked);
    (await uploads.next())(false);
    await waitSaved(page);
    const ids = uploads.bodies.map((b) => JSON.parse(b).observationId as string);
    expect(ids).toHaveLength(2);
    expect(ids[1]).toBe(ids[0]);
    expect(await rows(page)).toEqual([[expect.any(String), '135', '85']]);
    // The answer reset the form (nothing was typed into it meanwhile), and it can be typed into again.
    expect([await page.inputValue('#systolic'), await page.inputValue('#diastolic')]).toEqual(['', '']);
    await page.fill('#systolic', '128');
    expect(await page.inputValue('#systolic')).toBe('128');
    expectClean(w, [/ERR_CONNECTION_RESET/]); // the answer this test dropped
    await w.context.close();
  });

  /** The reading fields' read-only and aria-busy, in the order systolic, diastolic, time. */
  const readingLocks = (page: Page) =>
    page.evaluate(() => ['systolic', 'diastolic', 'measured'].map((f) => [(document.getElementById(f) as unknown as { readOnly: boolean }).readOnly, document.getElementById(f)!.getAttribute('aria-busy')]));

  /** The upload's wait ended: its status says something else than "Uploading...", or the page threw. */
  const uploadEnded = (w: Watched): Promise<unknown> =>
    Promise.race([
      w.page.waitForEvent('pageerror'),
      w.page.waitForFunction(() => {
        const t = document.getElementById('upload-status')!.textContent ?? '';
        return t !== '' && !/Uploading/.test(t);
      }),
    ]);

  // A reload after the save answered 200 with a page that is not the hub's list (a proxy's, a portal's): the page threw
  // drawing it, and the reading's fields stayed read-only for good.
  it("gives the reading's fields back when the readings' reload after a save is answered with something else than the hub's list", async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '060504-4567');
    await page.route('**/observations/search', (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<html><p>Please accept the terms of use.</p></html>' }));
    await upload(page, '136', '86');
    await uploadEnded(w);
    expect({ problems: w.problems, locks: await readingLocks(page), said: await page.textContent('#upload-status') }).toEqual({
      problems: [],
      locks: [[false, null], [false, null], [false, null]],
      said: expect.stringMatching(/^Saved: 136 over 86 mmHg/),
    });
    // Not "no readings": the readings' reload failed, and says so.
    expect(await page.textContent('#load-error')).toMatch(/cannot be reached/);
    await page.fill('#systolic', '128');
    expect(await page.inputValue('#systolic')).toBe('128');
    expectClean(w);
    await w.context.close();
  });

  // The reading was saved but the readings' reload after it failed: "Saved" alone (or "it lies before the period
  // shown", judged by the old list) sent the patient looking for a reading that was not on screen.
  it("says a reading was saved and that the list could not be refreshed when the readings' reload after it fails", async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '070605-4567');
    await page.route('**/observations/search', (route) => route.abort('connectionrefused'));
    await upload(page, '137', '87');
    await waitSaved(page);
    expect(await page.textContent('#upload-status')).toMatch(/^Saved: 137 over 87 mmHg at [^.]*\. The list of readings could not be refreshed, so it is not in it yet: choose a period to try again\.$/);
    expect(await page.textContent('#load-error')).toMatch(/cannot be reached/);
    expect(await rows(page)).toEqual([]);
    // A reading of 8 days ago: not judged against the old list ("it lies before the period shown").
    await upload(page, '138', '88', await localTime(page, 8));
    await waitSaved(page);
    expect(await page.textContent('#upload-status')).toMatch(/^Saved: 138 over 88 mmHg at [^.]*\. The list of readings could not be refreshed/);
    // The list back: the two readings of this week and before it are there when a period is chosen.
    await page.unroute('**/observations/search');
    await page.click('.preset[data-days="30"]');
    await page.waitForFunction(() => /^2 readings/.test(document.getElementById('period')!.textContent ?? ''));
    expectClean(w, [/ERR_CONNECTION_REFUSED/]); // the reloads this test refused
    await w.context.close();
  });

  // The draft's id belongs to the attempt, not to its values: a new reading typed in with the same values as one whose
  // answer was lost (the time left empty, "now") went out with the draft's id and time, was answered as the repeat it
  // seemed ("Saved"), and was not stored.
  it('stores a new reading typed in with the same values as one whose answer was lost as a second reading', async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '030405-4567');
    const bodies = await routeUploads(page, (route) => route.abort('connectionreset')); // the hub stores it, its answer is lost
    await upload(page, '141', '91');
    await page.waitForFunction(() => /cannot be reached/.test(document.getElementById('upload-status')!.textContent ?? ''));
    // The patient looks: the reading was saved after all.
    await page.click('.preset[data-days="30"]');
    await page.waitForFunction(() => /^1 reading/.test(document.getElementById('period')!.textContent ?? ''));
    // Later, another reading that shows the same values, typed in afresh.
    await page.fill('#systolic', '');
    await page.fill('#diastolic', '');
    await upload(page, '141', '91');
    await waitSaved(page);
    const ids = bodies.map((b) => JSON.parse(b).observationId as string);
    expect(ids).toHaveLength(2);
    expect(ids[1]).not.toBe(ids[0]);
    expect(await rows(page)).toEqual([[expect.any(String), '141', '91'], [expect.any(String), '141', '91']]);
    // And once more after a save the page saw: a third.
    await upload(page, '141', '91');
    await waitSaved(page);
    expect(new Set(bodies.map((b) => JSON.parse(b).observationId as string)).size).toBe(3);
    expect(await rows(page)).toHaveLength(3);
    expectClean(w, [/ERR_CONNECTION_RESET/]); // the answer this test dropped
    await w.context.close();
  });

  // The same after a reload: Upload alone sends the draft brought back with its id ('an upload that gets no answer ...', below); typing the
  // values of a new reading over it, the same as the draft's, made a new attempt that went out as the draft.
  it('after a reload, the same values typed in over the draft brought back are a new reading', async () => {
    const cpr = '040506-4567';
    const w = await open();
    const { page } = w;
    await enterCpr(page, cpr);
    // Page routes outlive a reload.
    const bodies = await routeUploads(page, (route) => route.abort('connectionreset')); // the hub stores it, its answer is lost
    await upload(page, '143', '93');
    await page.waitForFunction(() => /cannot be reached/.test(document.getElementById('upload-status')!.textContent ?? ''));
    await page.reload();
    await enterCpr(page, cpr);
    expect(await rows(page)).toHaveLength(1); // saved after all
    expect([await page.inputValue('#systolic'), await page.inputValue('#diastolic')]).toEqual(['143', '93']);
    await page.fill('#systolic', '');
    await page.fill('#diastolic', '');
    await upload(page, '143', '93');
    await waitSaved(page);
    const ids = bodies.map((b) => JSON.parse(b).observationId as string);
    expect(ids).toHaveLength(2);
    expect(ids[1]).not.toBe(ids[0]);
    expect(await rows(page)).toEqual([[expect.any(String), '143', '93'], [expect.any(String), '143', '93']]);
    expect(await page.evaluate(() => sessionStorage.getItem('telemed.draft'))).toBeNull();
    expectClean(w, [/ERR_CONNECTION_RESET/]); // the answer this test dropped
    await w.context.close();
  });

  // A 5xx is the hub's trouble, not the reading's: an upload answered 503 audit_unavailable is stored (its audit event
  // is what failed), and one answered 503 storage_unavailable may be. "Not saved." sent the patient away to type it
  // in again some other time, as a new reading with a new id: stored twice. The hub's texts are for developers
  // ("idempotent by observationId"), and a read was told "whether this request was stored is unknown".
  it("says a 5xx in plain words: an upload may be saved and is sent again with its id; a read is tried again, nothing said of storing", async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '020304-4567');
    // The hub stores it, and answers as it does when the reading's audit event cannot be written.
    const bodies = await routeUploads(page, (route) => {
      const body = problem('audit_unavailable', 'the change could not be recorded in the audit trail; retry the request', { instance: '/observations' });
      return route.fulfill({ status: 503, contentType: 'application/problem+json', headers: { 'retry-after': '5' }, body: JSON.stringify(body) });
    });
    await upload(page, '134', '85');
    await page.waitForFunction(() => /audit|hub/i.test(document.getElementById('upload-status')!.textContent ?? ''));
    const said = (await page.textContent('#upload-status')) ?? '';
    expect(said).not.toMatch(/Not saved|audit trail|observationId|idempotent/);
    expect(said).toMatch(/may or may not be saved\. Press Upload again in \d+ seconds? as it is: it will be stored only once\. Changed, even back to the same values, it is saved as a new reading\.$/);
    await page.click('#upload-btn');
    await waitSaved(page);
    expect(bodies.map((b) => JSON.parse(b).observationId as string)).toEqual([expect.any(String), JSON.parse(bodies[0]!).observationId]);
    expect(await rows(page)).toEqual([[expect.any(String), '134', '85']]);

    await refuseReadings(page, 503, problem('storage_unavailable', 'the hub cannot reach its database now; whether this request was stored is unknown: send it again later (uploads are idempotent by observationId)'), { 'retry-after': '5' });
    await page.click('.preset[data-days="30"]');
    await page.waitForFunction(() => !document.getElementById('load-error')!.hidden);
    const load = (await page.textContent('#load-error')) ?? '';
    expect(load).not.toMatch(/stored|observationId|idempotent|database/);
    expect(load).toMatch(/cannot show your readings.*try again in 5 seconds/i);
    expectClean(w, [/status of 503/]);
    await w.context.close();
  });

  // A 2xx from something that is not the hub (a captive portal's or proxy's page answering 200) was said "Saved" and
  // its draft dropped: the patient never sent it again, and the reading was lost.
  it("keeps the draft and says the reading may or may not be saved when an upload is answered 2xx by something else than the hub", async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '140503-4567');
    // The first never reaches the hub: a portal's sign-in page answers it.
    const bodies = await routeUploads(page, (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<html><p>Please accept the terms of use.</p></html>' }), { reachesHub: false });
    await upload(page, '135', '86');
    await uploadEnded(w);
    expect({ title: await page.title(), said: await page.textContent('#upload-status') }).toEqual({
      title: expect.stringMatching(/^Error: reading may not be saved/),
      said: expect.stringMatching(/^The hub cannot be reached or its answer was lost, so the reading may or may not be saved\. Press Upload again as it is: it will be stored only once\./),
    });
    expect(await rows(page)).toEqual([]);
    // The draft is kept: the same attempt goes out again, with its id.
    await page.click('#upload-btn');
    await waitSaved(page);
    const ids = bodies.map((b) => JSON.parse(b).observationId as string);
    expect(ids).toEqual([expect.stringMatching(/^[0-9a-f-]{36}$/), ids[0]]);
    expect(await rows(page)).toEqual([[expect.any(String), '135', '86']]);
    expectClean(w);
    await w.context.close();
  });

  // 503 auth_unavailable is answered before anything is stored: "may or may not be saved" left the patient unsure.
  it('says an upload refused because sign-ins cannot be checked (503 auth_unavailable) was not saved, and when to try again', async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '150503-4567');
    await page.route('**/observations', (route) =>
      route.fulfill({ status: 503, contentType: 'application/problem+json', headers: { 'retry-after': '5' }, body: JSON.stringify(problem('auth_unavailable', 'the hub cannot check bearer tokens now')) }),
    );
    await upload(page, '136', '87');
    await uploadEnded(w);
    expect({ title: await page.title(), said: await page.textContent('#upload-status') }).toEqual({
      title: expect.stringMatching(/^Error: reading not saved/),
      said: 'Not saved. The hub cannot check sign-ins just now. Press Upload again in 5 seconds.',
    });
    expectClean(w, [/status of 503/]);
    await w.context.close();
  });

  it('works by keyboard alone: Tab to the fields, Enter to upload', async () => {
    const w = await open();
    const { page } = w;
    const tabTo = async (id: string, key = 'Tab'): Promise<void> => {
      for (let i = 0; i < 40; i++) {
        if ((await page.evaluate(() => document.activeElement?.id || document.activeElement?.getAttribute('data-days'))) === id) return;
        await page.keyboard.press(key);
      }
      throw new Error(`${key} never reached ${id}`);
    };
    await tabTo('cpr');
    await page.keyboard.type('020304-5678');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#review:not([hidden])');
    // Focus moved to the readings' heading, so the next Tab continues from there.
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('review-h');
    await tabTo('systolic');
    // The focused field is visibly marked.
    expect(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle)).toBe('solid');
    await page.keyboard.type('124');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('diastolic');
    await page.keyboard.type('78');
    await page.keyboard.press('Enter');
    await waitSaved(page);
    expect(await rows(page)).toEqual([[expect.any(String), '124', '78']]);
    // Enter on the button itself: it is aria-disabled while it uploads and keeps the focus (disabled, it lost the
    // focus to the page's body, so the next Tab started from the top).
    await tabTo('systolic', 'Shift+Tab');
    await page.keyboard.type('125');
    await page.keyboard.press('Tab');
    await page.keyboard.type('79');
    await tabTo('upload-btn');
    await page.keyboard.press('Enter');
    await waitSaved(page);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('upload-btn');
    expect(await rows(page)).toHaveLength(2);
    // The period buttons answer to the keyboard too.
    await tabTo('30', 'Shift+Tab'); // back up to the "30 days" button
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('.preset[data-days="30"]')!.getAttribute('aria-pressed') === 'true');
    expect(w.posts()).toBe(2);
    expectClean(w);
    await w.context.close();
  });

  it('shows a chosen period: presets and from/to dates', async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '030405-6789');
    await upload(page, '150', '95', await localTime(page, 20));
    await waitSaved(page);
    await upload(page, '120', '80', await localTime(page, 1));
    await waitSaved(page);
    expect((await rows(page)).map((r) => r[1])).toEqual(['120']); // last 7 days
    await page.click('.preset[data-days="30"]');
    await page.waitForFunction(() => document.querySelectorAll('#chart circle.pt.sys').length === 2);
    expect((await rows(page)).map((r) => r[1])).toEqual(['120', '150']);
    // From/to: the day of the older reading only.
    const day = (await localTime(page, 20)).slice(0, 10);
    await page.fill('#from', day);
    await page.fill('#to', day);
    await page.click('#range-form button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#chart circle.pt.sys').length === 1);
    expect((await rows(page)).map((r) => r[1])).toEqual(['150']);
    expect(await page.getAttribute('.preset[data-days="7"]', 'aria-pressed')).toBe('false');
    // A backwards period is refused on the page.
    const later = (await localTime(page, 10)).slice(0, 10);
    await page.fill('#from', later);
    await page.click('#range-form button[type=submit]');
    expect(await page.textContent('#range-error')).toMatch(/must not lie before/);
    // A year typed with two digits (0026): new Date(26, ...) made it 1926, and the page asked for 1926 or refused
    // the period as longer than 366 days.
    await page.fill('#from', `00${day.slice(2, 4)}${day.slice(4)}`);
    await page.fill('#to', day);
    await page.click('#range-form button[type=submit]');
    expect(await page.textContent('#range-error')).toMatch(/Check the year of the from date/);
    expect(await page.getAttribute('#from', 'aria-invalid')).toBe('true');
    expectClean(w);
    await w.context.close();
  });

  // "Last 7 days" ran from now minus 7 x 24 hours while the From field and the graph's summary named that whole first
  // day: a reading earlier that day was left out of a period that said it covered it, and across a clock change the
  // start moved an hour. A preset is now whole days in the patient's zone, today and the days before it, asked for
  // from midnight of the first. The page's clock is fixed, and so is the hub's as the page learns it (its Date).
  it("asks for and names the same whole days for 'Last 7 days' in the patient's zone, across the clock change too", async () => {
    const cpr = '210512-1234';
    const token = await patientToken(cpr);
    // Saturday 31 October 2026, 10:00 in Copenhagen (CET); the clocks went back an hour on Sunday 25 October.
    const now = new Date('2026-10-31T10:00:00+01:00');
    const stored: ReadonlyArray<readonly [string, number]> = [
      ['2026-10-24T08:00:00+02:00', 131], // the day before the seven
      ['2026-10-24T23:59:59+02:00', 132], // its last second
      ['2026-10-25T00:30:00+02:00', 133], // early on the first day
      ['2026-10-31T09:00:00+01:00', 134], // today
    ];
    for (const [at, systolic] of stored) {
      const res = await fetch(`${hub.url}/observations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ patientId: cpr, systolic, diastolic: 80, measuredAt: at }),
      });
      expect(res.status).toBe(201);
    }
    const searched: Array<{ from: string; to: string }> = [];
    const w = await open(undefined, async (page) => {
      await page.clock.setFixedTime(now);
      await page.route(
        (url) => /\/(auth\/dev-login|observations(\/search)?)$/.test(url.pathname),
        async (route) => {
          if (route.request().url().endsWith('/search')) searched.push(JSON.parse(route.request().postData() ?? '{}'));
          const response = await route.fetch();
          await route.fulfill({ response, headers: { ...response.headers(), date: now.toUTCString() } });
        },
      );
    });
    const { page } = w;
    await enterCpr(page, cpr);
    // Sunday 25 to Saturday 31 October, from midnight (summer time, +02:00) of the first day.
    expect(searched.at(-1)!.from).toBe('2026-10-24T22:00:00Z');
    expect([await page.inputValue('#from'), await page.inputValue('#to')]).toEqual(['2026-10-25', '2026-10-31']);
    expect((await rows(page)).map((r) => r[1])).toEqual(['134', '133']);
    expect((await markers(page)).desc).toMatch(/^2 readings from 25 Oct to 31 Oct\./);
    expect(await page.textContent('#period')).toMatch(/^2 readings from 25 Oct 2026, 00:00 to now/);
    // 30 days: from Friday 2 October.
    await page.click('.preset[data-days="30"]');
    await page.waitForFunction(() => /^4 readings/.test(document.getElementById('period')!.textContent ?? ''));
    expect(searched.at(-1)!.from).toBe('2026-10-01T22:00:00Z');
    expect([await page.inputValue('#from'), await page.inputValue('#to')]).toEqual(['2026-10-02', '2026-10-31']);
    // "Saved" at the week's edges: the first minute of its first day is in it, the last of the day before is not.
    await page.click('.preset[data-days="7"]');
    await page.waitForFunction(() => /^2 readings/.test(document.getElementById('period')!.textContent ?? ''));
    await upload(page, '125', '75', '2026-10-25T00:00');
    await waitSaved(page);
    expect(await page.textContent('#upload-status')).toMatch(/^Saved: 125 over 75 mmHg at [^.]*\.$/);
    await upload(page, '126', '76', '2026-10-24T23:59');
    await waitSaved(page);
    expect(await page.textContent('#upload-status')).toMatch(/^Saved: 126 over 76 mmHg at .*\. It lies before the period shown/);
    expect((await rows(page)).map((r) => r[1])).toEqual(['134', '133', '125']);
    expectClean(w);
    await w.context.close();
  });

  // The hub stores a reading up to 5 minutes ahead of its clock, and a preset lists it (it ends 10 minutes after the
  // hub's now), but "to now (as of 23:58)", the graph's summary and the To field ended before it: at 23:58 a reading
  // of 00:02 was listed in "Last 7 days ... to 29 Nov". They now end at the newest reading when it lies ahead.
  // The first day's date was missing from the graph's axis (its ticks began at the second day's midnight).
  it("names a reading stored ahead of the hub's now in the period's end, and labels the first day on the axis", async () => {
    const cpr = '180512-1234';
    const token = await patientToken(cpr);
    // Saturday 29 November 2025, 23:58 in Copenhagen, by the hub's clock as the page learns it.
    const now = new Date('2025-11-29T23:58:00+01:00');
    for (const [at, systolic] of [['2025-11-23T10:00:00+01:00', 131], ['2025-11-30T00:02:00+01:00', 132]] as const) {
      const res = await fetch(`${hub.url}/observations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ patientId: cpr, systolic, diastolic: 80, measuredAt: at }),
      });
      expect(res.status).toBe(201);
    }
    const w = await open(undefined, async (page) => {
      await page.clock.setFixedTime(now);
      await page.route(
        (url) => /\/(auth\/dev-login|observations(\/search)?)$/.test(url.pathname),
        async (route) => {
          const response = await route.fetch();
          await route.fulfill({ response, headers: { ...response.headers(), date: now.toUTCString() } });
        },
      );
    });
    const { page } = w;
    await enterCpr(page, cpr);
    expect((await rows(page)).map((r) => r[1])).toEqual(['132', '131']);
    expect(await page.textContent('#period')).toBe('2 readings from 23 Nov 2025, 00:00 to now (as of 00:02).');
    expect((await markers(page)).desc).toMatch(/^2 readings from 23 Nov to 30 Nov\./);
    expect([await page.inputValue('#from'), await page.inputValue('#to')]).toEqual(['2025-11-23', '2025-11-30']);
    const labels = await page.$$eval('#chart svg g text[text-anchor="middle"]:not(.nodata)', (ts) => ts.map((t) => t.textContent));
    expect(labels.slice(0, 2)).toEqual(['23 Nov', '24 Nov']);
    expectClean(w);
    await w.context.close();
  });

  // The hub's rule is at most 366 x 24 hours (whole seconds), and the page's check is the same; but 366 calendar days
  // over the night the clocks go back are an hour more, and the page said "at most 366 days" of 366 days.
  it("refuses a chosen period as the hub does (366 x 24 hours), and says why when the clocks going back make 366 days too long", async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '190512-1234');
    // 30 October 2027 (summer time) to 29 October 2028 (winter time from that night): 366 days and an hour.
    await page.fill('#from', '2027-10-30');
    await page.fill('#to', '2028-10-29');
    await page.click('#range-form button[type=submit]');
    expect(await page.textContent('#range-error')).toBe('A period can be at most 366 days of 24 hours: this one is longer, as the clocks are put back within it. Choose a to date closer to the from date.');
    // The hub's answers to what the page would have asked, and to the same a day later from: 365 days and an hour.
    const token = await patientToken('190512-1234');
    const status = async (from: string) =>
      (await fetch(`${hub.url}/observations/search`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ patientId: '190512-1234', from, to: '2028-10-29T23:00:00Z' }) })).status;
    expect([await status('2027-10-29T22:00:00Z'), await status('2027-10-30T22:00:00Z')]).toEqual([422, 404]);
    await page.fill('#from', '2027-10-31');
    await page.click('#range-form button[type=submit]');
    await page.waitForFunction(() => /^No readings from 31 Oct 2027/.test(document.getElementById('period')!.textContent ?? ''));
    expect(await page.isHidden('#range-error')).toBe(true);
    // 367 days: too many whatever the clocks do.
    await page.fill('#from', '2027-10-29');
    await page.fill('#to', '2028-10-29');
    await page.click('#range-form button[type=submit]');
    expect(await page.textContent('#range-error')).toBe('A period can be at most 366 days. Choose a to date closer to the from date.');
    expectClean(w);
    await w.context.close();
  });

  // A chosen From date was taken at the hour its day and month had in 2000: where the clocks went forward at midnight
  // that year (Chile: Sunday 15 October 2000), From 15 October began at 01:00 in every year, its first hour left out.
  it('starts a chosen period at midnight of its From date in a zone whose clocks once changed at midnight on that date (America/Santiago)', async () => {
    const cpr = '150380-1234';
    const token = await patientToken(cpr);
    for (const [at, systolic] of [['2026-10-15T00:30:00-03:00', 141], ['2026-10-15T12:00:00-03:00', 142]] as const) {
      const res = await fetch(`${hub.url}/observations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ patientId: cpr, systolic, diastolic: 80, measuredAt: at }),
      });
      expect(res.status).toBe(201);
    }
    const searched: Array<{ from: string; to: string }> = [];
    const w = await open(
      undefined,
      async (page) => {
        await page.route('**/observations/search', (route) => (searched.push(JSON.parse(route.request().postData() ?? '{}')), route.continue()));
      },
      'America/Santiago',
    );
    const { page } = w;
    await enterCpr(page, cpr);
    await page.fill('#from', '2026-10-15');
    await page.fill('#to', '2026-10-15');
    await page.click('#range-form button[type=submit]');
    await page.waitForFunction(() => /^\d+ readings? from 15 Oct/.test(document.getElementById('period')!.textContent ?? ''));
    expect(searched.at(-1)).toEqual({ patientId: cpr, from: '2026-10-15T03:00:00Z', to: '2026-10-16T03:00:00Z' });
    expect(await page.textContent('#period')).toMatch(/^2 readings from 15 Oct 2026, 00:00 to 15 Oct 2026, 23:59\.$/);
    expect((await rows(page)).map((r) => r[1])).toEqual(['142', '141']);
    expectClean(w);
    await w.context.close();
  });

  // "Saved" is said once the reading is on screen; a reading whose time lies outside the period shown (typed in a day
  // after the week's edge) is not, and the patient, told only "Saved", looked for it in vain and typed it in again.
  it('says when a reading just saved lies outside the period shown, and where to find it', async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '070809-6789');
    await upload(page, '151', '96', await localTime(page, 8)); // before the last 7 days
    await waitSaved(page);
    expect(await page.textContent('#upload-status')).toMatch(/^Saved: 151 over 96 mmHg at .*\. It lies before the period shown: choose a longer period or other dates to see it\.$/);
    expect(await rows(page)).toEqual([]);
    await upload(page, '121', '81', await localTime(page, 1)); // in it: nothing more said
    await waitSaved(page);
    expect(await page.textContent('#upload-status')).toMatch(/^Saved: 121 over 81 mmHg at [^.]*\.$/);
    // A chosen period in the past, and a reading of now: after it.
    const day = (await localTime(page, 8)).slice(0, 10);
    await page.fill('#from', day);
    await page.fill('#to', day);
    await page.click('#range-form button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#chart circle.pt.sys').length === 1);
    await upload(page, '122', '82');
    await waitSaved(page);
    expect(await page.textContent('#upload-status')).toMatch(/^Saved: 122 over 82 mmHg at .*\. It lies after the period shown: choose a longer period or other dates to see it\.$/);
    expect((await rows(page)).map((r) => r[1])).toEqual(['151']);
    expectClean(w);
    await w.context.close();
  });

  it('Change person signs out: no token or CPR number is kept, and nothing of the previous patient stays on screen', async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '060708-1234');
    await upload(page, '127', '81');
    await waitSaved(page);
    await page.fill('#systolic', '133'); // a draft of the next reading, not sent
    await page.click('#forget');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
    const screen = await page.evaluate(() => ({
      review: document.getElementById('review')!.textContent ?? '',
      chart: document.querySelectorAll('#chart *').length,
      status: document.getElementById('upload-status')!.textContent,
      draft: (document.getElementById('systolic') as unknown as { value: string }).value,
    }));
    expect(screen.review).not.toMatch(/127|81|reading from|readings from/);
    expect(screen.chart).toBe(0);
    expect(screen.status).toBe('');
    expect(screen.draft).toBe('');
    // On a hub without the local dev login, entering that CPR number again needs a new sign-in.
    await noDevLogin(page);
    await page.fill('#cpr', '060708-1234');
    await page.click('#cpr-form button[type=submit]');
    expect(await formProblem(page)).toMatch(/Please sign in/);
    expect(await page.isHidden('#review')).toBe(true);
    expectClean(w, [/status of 401/]);
    await w.context.close();
  });

  it("does not show the old period's readings as a newly chosen period's when the reload fails", async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '070809-1234');
    await upload(page, '132', '84');
    await waitSaved(page);
    const before = await page.textContent('#period');
    await refuseReadings(page, 503, { code: 'storage_unavailable', title: 'The hub cannot store data right now', detail: 'the store does not answer' });
    await page.click('.preset[data-days="30"]');
    await page.waitForFunction(() => !document.getElementById('load-error')!.hidden);
    expect(await page.textContent('#load-error')).toMatch(/cannot show your readings just now/);
    // The readings on screen are still those of the last 7 days, and the page says so.
    expect(await page.getAttribute('.preset[data-days="30"]', 'aria-pressed')).toBe('false');
    expect(await page.getAttribute('.preset[data-days="7"]', 'aria-pressed')).toBe('true');
    expect(await page.textContent('#period')).toBe(before);
    expect((await rows(page)).map((r) => r[1])).toEqual(['132']);
    expectClean(w, [/status of 503/]);
    await w.context.close();
  });

  it("shows the period pressed last: an earlier period's answer that comes later is not put under it", async () => {
    const w = await open(undefined, countSearches);
    const { page } = w;
    await enterCpr(page, '200812-1234');
    await upload(page, '150', '95', await localTime(page, 40));
    await waitSaved(page);
    await upload(page, '120', '80', await localTime(page, 1));
    await waitSaved(page);
    const searched = () => page.evaluate(() => (globalThis as unknown as { searched: number }).searched);
    // The 90 days' answer is held until the 7 days' is on screen.
    let release!: () => void;
    const held = new Promise<void>((ok) => (release = ok));
    await page.route('**/observations/search', async (route) => {
      const { from, to } = JSON.parse(route.request().postData() ?? '{}') as { from: string; to: string };
      if (Date.parse(to) - Date.parse(from) > 60 * 86_400_000) await held;
      await route.continue();
    });
    const before = await searched();
    await page.click('.preset[data-days="90"]');
    await page.click('.preset[data-days="7"]');
    await page.waitForFunction((n) => (globalThis as unknown as { searched: number }).searched === n + 1, before);
    const shown = await page.textContent('#period');
    expect((await rows(page)).map((r) => r[1])).toEqual(['120']);
    release();
    await page.waitForFunction((n) => (globalThis as unknown as { searched: number }).searched === n + 2, before);
    expect(await page.getAttribute('.preset[data-days="7"]', 'aria-pressed')).toBe('true');
    expect(await page.textContent('#period')).toBe(shown);
    expect((await rows(page)).map((r) => r[1])).toEqual(['120']);
    expect(await page.$$eval('#chart circle.pt.sys', (cs) => cs.map((c) => c.getAttribute('data-value')))).toEqual(['120']);
    expectClean(w);
    await w.context.close();
  });

  it("clears an erased patient's readings and draft from the page, at a reload or an upload, and says so in plain words", async () => {
    const erase = async (cpr: string): Promise<void> => {
      const op = await fetch(`${hub.url}/auth/dev-login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ role: 'operator' }) });
      const { token } = (await op.json()) as { token: string };
      const res = await fetch(`${hub.url}/erasures`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ patient: cpr }) });
      expect(res.status).toBe(200);
      // Until the hub answers the patient's own search 410 (its erased-keys subscription has seen the erasure).
      const own = await patientToken(cpr);
      for (;;) {
        const s = await fetch(`${hub.url}/observations/search`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${own}` }, body: JSON.stringify({ patientId: cpr }) });
        if (s.status === 410) return;
        await new Promise((ok) => setTimeout(ok, 50));
      }
    };
    const gone = async (page: Page): Promise<void> => {
      await page.waitForFunction(() => /erased/.test(document.getElementById('who-status')!.textContent ?? ''));
      expect(await page.textContent('#who-status')).not.toMatch(/The patient was erased/); // the hub's text for developers
      expect(await page.isVisible('#review')).toBe(false);
      expect(await page.isVisible('#upload')).toBe(false);
      expect(await page.isVisible('#cpr-form')).toBe(true);
      expect(await page.$$('#readings tbody tr:not(:has(.empty))')).toHaveLength(0);
      expect(await page.$$('#chart .pt')).toHaveLength(0);
      expect(await page.evaluate(() => sessionStorage.getItem('telemed.draft'))).toBeNull();
      expect(await page.inputValue('#systolic')).toBe('');
    };
    // A reload (another period) after the erasure.
    const w = await open();
    await enterCpr(w.page, '210812-1234');
    await upload(w.page, '150', '95');
    await waitSaved(w.page);
    await erase('210812-1234');
    await w.page.click('.preset[data-days="30"]');
    await gone(w.page);
    expectClean(w, [/status of 410/]);
    await w.context.close();
    // An upload after the erasure.
    const u = await open();
    await enterCpr(u.page, '220812-1234');
    await upload(u.page, '150', '95');
    await waitSaved(u.page);
    await erase('220812-1234');
    await upload(u.page, '140', '85');
    await gone(u.page);
    expectClean(u, [/status of 410/]);
    await u.context.close();
  });

  it("says nothing of the previous patient's upload to the next when Change person is pressed while the readings reload after it", async () => {
    const w = await open(undefined, countSearches);
    const { page } = w;
    await enterCpr(page, '230913-1234');
    // The reload after the save is held until the next person has taken the tab.
    let release!: () => void;
    const held = new Promise<void>((ok) => (release = ok));
    let asked!: () => void;
    const reloading = new Promise<void>((ok) => (asked = ok));
    await page.route('**/observations/search', async (route) => {
      if (/230913-1234/.test(route.request().postData() ?? '')) {
        asked();
        await held;
      }
      await route.continue();
    });
    await upload(page, '143', '91');
    await reloading;
    await page.click('#forget');
    const searched = await page.evaluate(() => (globalThis as unknown as { searched: number }).searched);
    release();
    await page.waitForFunction((n) => (globalThis as unknown as { searched: number }).searched === n + 1, searched);
    await enterCpr(page, '240812-1234');
    expect(await page.textContent('#upload-status')).toBe('');
    expect(await page.textContent('#upload')).not.toMatch(/143|91/);
    expect(await page.title()).toBe('Your readings \u2013 My blood pressure \u2013 TeleMed');
    expectClean(w);
    await w.context.close();
  });

  it("lets the next patient upload at once after Change person pressed while the previous one's upload waits for its answer", async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '290812-1234');
    let release!: () => void;
    const held = new Promise<void>((ok) => (release = ok));
    let asked!: () => void;
    const sent = new Promise<void>((ok) => (asked = ok));
    await page.route('**/observations', async (route) => {
      if (/290812-1234/.test(route.request().postData() ?? '')) {
        asked();
        await held;
      }
      await route.continue();
    });
    await upload(page, '151', '93');
    await sent;
    await page.click('#forget');
    await enterCpr(page, '300812-1234');
    // The button was left aria-disabled, and Upload did nothing, until the previous patient's answer came (up to a minute).
    expect(await page.getAttribute('#upload-btn', 'aria-disabled')).toBeNull();
    await upload(page, '124', '79');
    await waitSaved(page);
    expect(await page.textContent('#upload-status')).toMatch(/^Saved: 124 over 79 mmHg/);
    release();
    await page.waitForFunction(() => /^Saved: 124/.test(document.getElementById('upload-status')!.textContent ?? ''));
    expect((await rows(page)).map((r) => [r[1], r[2]])).toEqual([['124', '79']]);
    expectClean(w);
    await w.context.close();
  });

  it("leaves no aria-busy on the next patient's readings when Change person is pressed while a period loads", async () => {
    const w = await open(undefined, countSearches);
    const { page } = w;
    await enterCpr(page, '250812-1234');
    let release!: () => void;
    const held = new Promise<void>((ok) => (release = ok));
    await page.route('**/observations/search', async (route) => {
      if (/250812-1234/.test(route.request().postData() ?? '')) await held;
      await route.continue();
    });
    await page.click('.preset[data-days="30"]');
    await page.waitForFunction(() => document.getElementById('readings')!.getAttribute('aria-busy') === 'true');
    await page.click('#forget');
    await enterCpr(page, '260812-1234');
    const searched = await page.evaluate(() => (globalThis as unknown as { searched: number }).searched);
    release();
    await page.waitForFunction((n) => (globalThis as unknown as { searched: number }).searched === n + 1, searched);
    expect(await page.getAttribute('#readings', 'aria-busy')).toBeNull();
    expect(await page.getAttribute('#chart-fig', 'aria-busy')).toBeNull();
    expectClean(w);
    await w.context.close();
  });

  it("takes the erased patient's draft out of the tab when the first load after a reload is answered 410", async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '270812-1234');
    await page.route('**/observations', (route) => route.abort('connectionrefused'));
    await upload(page, '166', '97');
    await page.waitForFunction(() => /cannot be reached/.test(document.getElementById('upload-status')!.textContent ?? ''));
    expect(await page.evaluate(() => sessionStorage.getItem('telemed.draft'))).toMatch(/166/);
    await page.unroute('**/observations');
    await page.reload();
    await refuseReadings(page, 410, problem('patient_erased', 'the patient was erased: their data no longer exists'));
    await page.fill('#cpr', '270812-1234');
    await page.click('#cpr-form button[type=submit]');
    expect(await formProblem(page)).toMatch(/have been erased/);
    expect(await page.evaluate(() => sessionStorage.getItem('telemed.draft'))).toBeNull();
    expectClean(w, [/ERR_CONNECTION_REFUSED/, /status of 410/]);
    await w.context.close();
  });

  it("asks to check the year of a reading's time typed with two digits (0026), or with five", async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '280812-1234');
    const typed = await localTime(page, 1);
    for (const year of ['0026', '0999']) {
      await upload(page, '128', '82', `${year}${typed.slice(4)}`);
      await page.waitForFunction(() => !document.getElementById('measured-error')!.hidden);
      expect((await errorOf(page, 'measured')).text).toMatch(/Check the year/);
    }
    await page.fill('#measured', '');
    await page.evaluate((t) => { (document.getElementById('measured') as unknown as { value: string }).value = t; }, `2${typed}`);
    expect(await page.inputValue('#measured')).toBe(`2${typed}`);
    await page.click('#upload-btn');
    await page.waitForFunction(() => !document.getElementById('measured-error')!.hidden);
    expect((await errorOf(page, 'measured')).text).toMatch(/Check the year/);
    expect(w.posts()).toBe(0);
    // The period's dates too: a year of five digits is not "no date chosen".
    await page.evaluate((d) => { (document.getElementById('from') as unknown as { value: string }).value = d; }, `2${typed.slice(0, 10)}`);
    await page.fill('#to', typed.slice(0, 10));
    await page.click('#range-form button[type=submit]');
    expect(await page.textContent('#range-error')).toMatch(/Check the year of the from date/);
    expectClean(w);
    await w.context.close();
  });

  it("lists a reading just saved when the browser's clock is behind the hub's, or its time lies a little ahead", async () => {
    const w = await open(undefined, async (page) => {
      await page.clock.install({ time: Date.now() - 180_000 }); // 3 minutes slow
      await page.clock.resume();
    });
    const { page } = w;
    await enterCpr(page, '080910-1234');
    await upload(page, '125', '79'); // the hub's "now": 3 minutes after the page's
    await waitSaved(page);
    expect((await rows(page)).map((r) => r[1])).toEqual(['125']);
    // A time the hub allows (up to 5 minutes ahead of its clock): the page's clock plus 5 minutes, whole minutes.
    const ahead = await page.evaluate(() => {
      const x = new Date(Date.now() + 5 * 60_000);
      const p = (n: number) => String(n).padStart(2, '0');
      return `${x.getFullYear()}-${p(x.getMonth() + 1)}-${p(x.getDate())}T${p(x.getHours())}:${p(x.getMinutes())}`;
    });
    await upload(page, '122', '77', ahead);
    await waitSaved(page);
    expect((await rows(page)).map((r) => r[1])).toEqual(['122', '125']);
    expectClean(w);
    await w.context.close();
  });

  // On a shared computer a patient leaves by going to another site in the same tab; the next person presses Back.
  // Chromium's back/forward cache brought the page back as it was left (its memory kept): the CPR number, the
  // readings and graph, the sign-in, and Upload saved a reading as that patient. It comes back as after a reload.
  it('asks for the CPR number again when Back brings the page back from the back/forward cache', async () => {
    const cached = await launchChromiumWithBackForwardCache();
    try {
      const context = await cached.newContext({ locale: 'en-GB', timezoneId: 'Europe/Copenhagen' });
      const page = await context.newPage();
      await page.goto(`${hub.url}/app/`);
      await enterCpr(page, '030405-4567');
      await upload(page, '131', '82');
      await waitSaved(page);
      await page.evaluate(() => ((globalThis as unknown as { left: string }).left = 'the heap of the page left'));
      await page.goto(`${hub.url}/health`);
      await page.goBack({ waitUntil: 'commit' }); // from the cache: no load event
      await page.waitForFunction(() => !document.getElementById('cpr-form')!.hidden, null, { timeout: 10_000 });
      expect(await page.evaluate(() => ({
        heap: (globalThis as unknown as { left?: string }).left ?? null,
        masked: document.getElementById('cpr-masked')!.textContent,
        review: document.getElementById('review')!.hidden,
        rows: document.querySelectorAll('#readings tbody tr').length,
      }))).toEqual({ heap: null, masked: '', review: true, rows: 0 });
      await context.close();
    } finally {
      await cached.close();
    }
  });

  it("brings the page back, not the API's raw JSON, when the CPR form is sent without the page's script (it failed to load, or scripts are off)", async () => {
    // A flaky connection: the page came, its script did not. The form posts (never GET: the number stays out of the URL).
    const w = await open(undefined, async (p) => { await p.route('**/app.js*', (route) => route.abort('connectionreset')); });
    const { page } = w;
    const posted: string[] = [];
    page.on('response', (r) => { if (r.request().method() === 'POST') posted.push(`${r.status()} ${r.headers()['location'] ?? ''}`); });
    await page.fill('#cpr', CPR);
    await Promise.all([page.waitForNavigation(), page.click('#cpr-form button[type=submit]')]);
    // The page again (a reload asks for the script anew), not {"type":"/problems/method_not_allowed",...}; a GET, so a
    // reload of it does not post the CPR number again.
    expect(posted).toEqual(['303 ./']);
    expect(page.url()).toBe(`${hub.url}/app/`);
    expect(await page.title()).toBe('My blood pressure – TeleMed');
    expect(await page.isVisible('#cpr')).toBe(true);
    expect(await page.inputValue('#cpr')).toBe('');
    // This time the script comes: the page works.
    await page.unroute('**/app.js*');
    await page.reload();
    await enterCpr(page);
    expectClean(w, [/ERR_CONNECTION_RESET/]);
    await w.context.close();

    // Scripts off: the page again, with its message that it needs JavaScript.
    const context = await browser.newContext({ javaScriptEnabled: false, locale: 'en-GB' });
    const off = await context.newPage();
    await off.goto(`${hub.url}/app/`);
    await off.fill('#cpr', CPR);
    await Promise.all([off.waitForNavigation(), off.click('#cpr-form button[type=submit]')]);
    expect(off.url()).toBe(`${hub.url}/app/`);
    expect(await off.textContent('noscript')).toContain('This page needs JavaScript');
    expect(await off.isVisible('#cpr')).toBe(true);
    await context.close();
  });

  it('takes a #token= link opened in a tab that already shows the page, and removes it from the address bar', async () => {
    const token = await patientToken('091011-1234');
    // The link lands in the browser's history and session files, token and all: the token names the patient by
    // their pseudonymous key, never by the CPR number.
    expect(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')).not.toMatch(/091011|0910111234/);
    const w = await open();
    const { page } = w;
    await page.evaluate((t) => (location.hash = `#token=${t}`), token);
    await page.waitForFunction(() => location.hash === '', undefined, { timeout: 5_000 });
    expect(page.url()).toBe(`${hub.url}/app/`);
    expect(await page.evaluate(() => sessionStorage.getItem('telemed.token'))).toBe(token);
    const answered = page.waitForResponse('**/observations/search');
    await enterCpr(page, '091011-1234');
    const res = await answered;
    expect(res.request().headers().authorization).toBe(`Bearer ${token}`);
    // The hub compares the token's key with the key of the CPR number the patient typed: theirs, so not refused.
    expect(res.status() === 200 || (res.status() === 404 && (await res.json()).code === 'unknown_patient')).toBe(true);
    expect(w.requests.filter((u) => u.includes('/auth/dev-login'))).toEqual([]);
    expectClean(w);
    await w.context.close();
  });

  it("leaves no CPR number in a browser profile on disk after a #token= sign-in (the link itself stays in its history)", async () => {
    // The privacy audit's setup: Chromium with a persistent profile kept /app/#token=eyJ... in its History and
    // session files although the page takes the fragment out of the address bar.
    const cpr = '121110-4321';
    const profile = mkdtempSync(join(tmpdir(), 'rts-web-profile-'));
    try {
      const context = await launchChromiumWithProfile(profile);
      const page = await context.newPage();
      await page.goto(`${hub.url}/app/#token=${await patientToken(cpr)}`);
      await enterCpr(page, cpr);
      await context.close();
      const files = (readdirSync(profile, { recursive: true }) as string[]).map((f) => join(profile, f)).filter((f) => statSync(f, { throwIfNoEntry: false })?.isFile());
      const contents = files.map((f) => readFileSync(f).toString('latin1'));
      // What the audit saw: the link is kept, and a JWT's claims are only base64url, readable by anyone with the file.
      const kept = contents.flatMap((text) => [...text.matchAll(/token=(eyJ[A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\./g)].map((m) => Buffer.from(m[2]!, 'base64url').toString('utf8')));
      expect(kept.length).toBeGreaterThan(0);
      for (const claims of kept) expect(claims).toMatch(/"patientKey":"p[0-9a-f]{32}"/);
      expect([...kept, ...contents].filter((text) => text.includes(cpr) || text.includes(cpr.replace('-', '')))).toEqual([]);
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  });

  it('says sign-in problems in plain words: an ended sign-in drops the token, a refusal names the CPR number, too many requests says when to retry', async () => {
    const w = await open();
    const { page } = w;
    await noDevLogin(page);
    await page.evaluate(() => sessionStorage.setItem('telemed.token', 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl'));
    await page.fill('#cpr', CPR);
    await page.click('#cpr-form button[type=submit]');
    const ended = await formProblem(page); // the hub's own 401: not the CPR number's fault
    expect(ended).toMatch(/Your sign-in has ended/);
    expect(ended).not.toMatch(/Bearer|X-Api-Key|token/);
    expect(await page.evaluate(() => sessionStorage.getItem('telemed.token'))).toBeNull();

    await refuseReadings(page, 403, { code: 'forbidden', title: 'You may not do this', detail: 'you may not do this with this resource' });
    await page.click('#cpr-form button[type=submit]');
    const refused = await cprError(page); // 403: this CPR number is not the signed-in patient's
    expect(refused).toMatch(/this CPR number.*cannot be shown with this sign-in/);
    expect(refused).not.toMatch(/You may not do this/);

    await page.unroute('**/observations/search');
    await refuseReadings(page, 429, { code: 'rate_limited', title: 'Too many requests', detail: 'too many requests; retry after 30 s' }, { 'retry-after': '30' });
    await page.click('#cpr-form button[type=submit]');
    expect(await formProblem(page, refused)).toBe('Too many requests; try again in 30 seconds.');
    // The dev login was asked once: its 404 says the hub has none (it was asked again on every request).
    expect(w.requests.filter((u) => u.includes('/auth/dev-login'))).toHaveLength(1);
    expectClean(w, [/status of (401|403|429)/]);
    await w.context.close();
  });

  it('an upload that gets no answer ends with a message and the button back; after a reload the same draft is sent with its id, and stored once', async () => {
    const w = await open(undefined, async (page) => {
      await page.clock.install();
      await page.clock.resume();
    });
    const { page } = w;
    await enterCpr(page, '131211-1234');
    const bodies = await routeUploads(page, async () => undefined); // the hub stores it, and the answer never comes
    await upload(page, '136', '86');
    await page.waitForFunction(() => /Uploading/.test(document.getElementById('upload-status')!.textContent ?? ''));
    while (bodies.length < 1) await new Promise((r) => setTimeout(r, 20)); // sent, and its time limit running
    await page.clock.fastForward(61_000);
    await page.waitForFunction(() => /No answer from the hub/.test(document.getElementById('upload-status')!.textContent ?? ''));
    expect(await page.isDisabled('#upload-btn')).toBe(false);
    // The patient reloads the page and tries again: the draft is back, with the id it was sent with.
    await page.reload();
    await enterCpr(page, '131211-1234');
    expect(await page.inputValue('#systolic')).toBe('136');
    expect(await page.inputValue('#diastolic')).toBe('86');
    await page.click('#upload-btn');
    await waitSaved(page);
    const sent = bodies.map((b) => JSON.parse(b) as { observationId: string; measuredAt?: string });
    expect(sent).toHaveLength(2);
    expect(sent[1]!.observationId).toBe(sent[0]!.observationId);
    // The time field was empty: the reading carries the time of the first Upload (the hub's clock), and the retry
    // the same, not the time it got through.
    expect(sent[0]!.measuredAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Math.abs(Date.parse(sent[0]!.measuredAt!) - Date.now())).toBeLessThan(120_000);
    expect(sent[1]!.measuredAt).toBe(sent[0]!.measuredAt);
    expect(await rows(page)).toEqual([[expect.any(String), '136', '86']]);
    expectClean(w);
    await w.context.close();
  });

  it("keeps a draft sent again later at the time it was taken, and never puts it in another patient's form after a reload", async () => {
    const [a, b] = ['121212-1212', '111111-1118'];
    const w = await open(undefined, async (page) => {
      await page.clock.install();
      await page.clock.resume();
    });
    const { page } = w;
    await enterCpr(page, a);
    const bodies: string[] = [];
    await page.route('**/observations', async (route) => {
      bodies.push(route.request().postData() ?? '');
      return route.abort('connectionrefused'); // the hub cannot be reached
    });
    await upload(page, '177', '99');
    await page.waitForFunction(() => /cannot be reached/.test(document.getElementById('upload-status')!.textContent ?? ''));
    const first = JSON.parse(bodies[0]!) as { measuredAt: string };
    // The tab is reloaded, and someone else signs in in it: the form is empty, nothing of A's is said or sent.
    await page.unroute('**/observations');
    await page.reload();
    await enterCpr(page, b);
    expect([await page.inputValue('#systolic'), await page.inputValue('#diastolic')]).toEqual(['', '']);
    expect(await page.textContent('#upload-status')).toBe('');
    // A comes back to the tab an hour later: the draft is A's again, and is stored at the time A took it.
    await page.reload();
    await page.clock.fastForward(3_600_000);
    await enterCpr(page, a);
    expect([await page.inputValue('#systolic'), await page.inputValue('#diastolic')]).toEqual(['177', '99']);
    expect(await page.textContent('#upload-status')).toMatch(/^This reading, taken .*, may not be saved yet\. .* with that time\. A reading typed over it is saved as a new one\.$/);
    await page.click('#upload-btn');
    await waitSaved(page);
    const token = await patientToken(a);
    const search = await fetch(`${hub.url}/observations/search`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ patientId: a }) });
    expect(((await search.json()) as { observations: { measuredAt: string; systolic: { value: number } }[] }).observations.map((o) => [o.measuredAt, o.systolic.value])).toEqual([[first.measuredAt, 177]]);
    const other = await fetch(`${hub.url}/observations/search`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await patientToken(b)}` }, body: JSON.stringify({ patientId: b }) });
    expect(other.status).toBe(404); // nothing stored for B
    expectClean(w, [/ERR_CONNECTION_REFUSED/]);
    await w.context.close();
  });

  it('says when "now" was, and asks for the readings again when the tab is shown after a minute', async () => {
    const cpr = '130313-1313';
    const w = await open(undefined, async (page) => {
      await page.clock.install();
      await page.clock.resume();
    });
    const { page } = w;
    await enterCpr(page, cpr);
    expect(await page.textContent('#period')).toMatch(/^No readings from .* to now \(as of \d\d:\d\d\)\.$/);
    const stored = await fetch(`${hub.url}/observations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${await patientToken(cpr)}` },
      body: JSON.stringify({ patientId: cpr, systolic: 220, diastolic: 130 }), // from another device
    });
    expect(stored.status).toBe(201);
    await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
    expect(await rows(page)).toEqual([]); // shown again within the minute: not asked again
    await page.clock.fastForward(61_000);
    await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
    await page.waitForFunction(() => /^1 reading/.test(document.getElementById('period')!.textContent ?? ''));
    expect(await rows(page)).toEqual([[expect.any(String), '220', '130']]);
    expectClean(w);
    await w.context.close();
  });

  it("lists a reading the hub just stored on the first load, also when the browser's clock is 2 hours behind", async () => {
    for (const viaLink of [false, true]) {
      const cpr = viaLink ? '140312-1234' : '150412-1234';
      const token = await patientToken(cpr);
      const stored = await fetch(`${hub.url}/observations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ patientId: cpr, systolic: 129, diastolic: 83 }), // at the hub's now
      });
      expect(stored.status).toBe(201);
      const w = await open(undefined, async (page) => {
        await page.clock.install({ time: Date.now() - 2 * 3_600_000 });
        await page.clock.resume();
      });
      const { page } = w;
      // Signed in by a link (no dev login before the first request), or by the hub's dev login.
      if (viaLink) await page.evaluate((t) => (location.hash = `#token=${t}`), token);
      await enterCpr(page, cpr);
      expect((await rows(page)).map((r) => r.slice(1))).toEqual([['129', '83']]);
      // "as of" is the hub's now, as the period's start is (it was the browser's: two hours before the reading listed).
      const asOf = /\(as of (\d\d:\d\d)\)/.exec((await page.textContent('#period')) ?? '')?.[1];
      const hubClock = await page.evaluate(() => [0, 60_000, -60_000].map((d) => new Intl.DateTimeFormat(document.documentElement.lang === 'en' ? 'en-GB' : document.documentElement.lang, { hour: '2-digit', minute: '2-digit' }).format(new Date(Date.now() + 2 * 3_600_000 + d))));
      expect(hubClock).toContain(asOf);
      expectClean(w);
      await w.context.close();
    }
  });

  it('tells apart the two 02:30s of the night summer time ends (Europe/Copenhagen): table, tooltips and summary name the offset', async () => {
    const cpr = '160512-1234';
    const token = await patientToken(cpr);
    for (const [at, s] of [['2025-10-26T00:30:00Z', 131], ['2025-10-26T01:30:00Z', 132]] as const) {
      const res = await fetch(`${hub.url}/observations`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ patientId: cpr, systolic: s, diastolic: 80, measuredAt: at }),
      });
      expect(res.status).toBe(201);
    }
    const w = await open();
    const { page } = w;
    await enterCpr(page, cpr);
    await page.fill('#from', '2025-10-25');
    await page.fill('#to', '2025-10-26');
    await page.click('#range-form button[type=submit]');
    await page.waitForFunction(() => document.querySelectorAll('#chart circle.pt.sys').length === 2);
    const times = (await rows(page)).map((r) => r[0]);
    expect(times).toHaveLength(2);
    expect(times[0]).not.toBe(times[1]);
    expect(times[0]).toMatch(/02:30.*GMT\+1/); // newest first: 01:30Z, after the change
    expect(times[1]).toMatch(/02:30.*GMT\+2/);
    const tips = await page.$$eval('#chart circle.pt.sys title', (ts) => ts.map((t) => t.textContent ?? ''));
    expect(new Set(tips).size).toBe(2);
    expect((await markers(page)).desc).toMatch(/Latest 132 over 80 on .*GMT\+1/);
    // Two calendar days of 49 hours are labelled by hour, as any two days (they got one day label).
    const labels = await page.$$eval('#chart svg g text[text-anchor="middle"]:not(.nodata)', (ts) => ts.map((t) => t.textContent ?? ''));
    expect(labels.filter((l) => /\d\d:\d\d/.test(l)).length).toBeGreaterThanOrEqual(2);
    expectClean(w);
    await w.context.close();
  });

  it('refuses a time the clocks skipped, and says which of a twice-come time it saved (Europe/Copenhagen)', async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '190812-1234');
    // 29 March 2026: 02:00 became 03:00, so 02:30 never was (before: saved as 03:30 without a word).
    await upload(page, '128', '82', '2026-03-29T02:30');
    await page.waitForFunction(() => !document.getElementById('measured-error')!.hidden);
    expect((await errorOf(page, 'measured')).text).toMatch(/This time does not exist on that day: the clocks were put forward/);
    expect(w.posts()).toBe(0);
    // 25 October 2026: 02:30 came twice; the first (summer time, +02:00) is taken, and the answer says so.
    await upload(page, '128', '82', '2026-10-25T02:30');
    await waitSaved(page);
    expect(await page.textContent('#upload-status')).toMatch(/That time happened twice that night .* the first was taken/);
    expect(w.posts()).toBe(1);
    const token = await patientToken('190812-1234');
    const res = await fetch(`${hub.url}/observations/search`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ patientId: '190812-1234', from: '2026-10-24T00:00:00Z', to: '2026-10-26T00:00:00Z' }),
    });
    expect(((await res.json()) as { observations: { measuredAt: string }[] }).observations.map((o) => o.measuredAt)).toEqual(['2026-10-25T00:30:00Z']);
    expectClean(w);
    await w.context.close();
  });

  it("a sign-in link followed in a tab showing another patient clears that patient, and keeps the new token for the next", async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '170612-1234');
    await upload(page, '127', '81');
    await waitSaved(page);
    const token = await patientToken('180712-1234');
    await page.evaluate((t) => (location.hash = `#token=${t}`), token);
    await page.waitForFunction(() => !document.getElementById('cpr-form')!.hidden);
    expect(await page.isHidden('#review')).toBe(true);
    expect(await page.evaluate(() => document.getElementById('readings')!.textContent ?? '')).not.toMatch(/127/);
    expect(await page.evaluate(() => sessionStorage.getItem('telemed.token'))).toBe(token);
    const answered = page.waitForResponse('**/observations/search');
    await enterCpr(page, '180712-1234');
    expect((await answered).request().headers().authorization).toBe(`Bearer ${token}`);
    expectClean(w);
    await w.context.close();
  });

  it('works behind a proxy that serves the hub under /hub/: nothing goes to the origin root, and a decimal comma is taken', async () => {
    const w = await open();
    const outside: string[] = [];
    await w.page.route('**/*', async (route) => {
      const url = route.request().url();
      if (!url.startsWith(`${hub.url}/`)) return route.continue();
      const path = url.slice(hub.url.length);
      if (!path.startsWith('/hub/')) {
        outside.push(path.replace(/\d{6}-?\d{4}/g, 'CPR'));
        return route.fulfill({ status: 404, contentType: 'text/plain', body: 'another application' });
      }
      return route.fulfill({ response: await route.fetch({ url: `${hub.url}${path.slice(4)}` }) });
    });
    const { page } = w;
    await page.goto(`${hub.url}/hub/app/`);
    expect(await page.evaluate(() => (document.getElementById('cpr-form') as unknown as { action: string }).action)).toBe(`${hub.url}/hub/app/`);
    await enterCpr(page, '190812-1234');
    // With a comma the page's own range check holds too (Number('12,6') is NaN, which passed it), and the decimals
    // are those the CLI takes (two at most).
    const posts: string[] = [];
    page.on('request', (r) => r.method() === 'POST' && /\/observations$/.test(r.url()) && posts.push(r.url()));
    await upload(page, '12,6', '70');
    expect(await page.textContent('#systolic-error')).toMatch(/Systolic must be between 50 and 300 mmHg/);
    await upload(page, '126,555', '70');
    expect(await page.textContent('#systolic-error')).toMatch(/at most two decimals/);
    expect(posts).toEqual([]);
    await upload(page, '126,5', '70');
    await waitSaved(page);
    expect(await rows(page)).toEqual([[expect.any(String), '126.5', '70']]);
    expect(outside).toEqual([]);
    expectClean(w);
    await w.context.close();
  });

  it('takes a reading typed in full-width digits (an input method in full-width mode), as the CPR field does', async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '\uFF12\uFF13\uFF10\uFF18\uFF11\uFF12-\uFF11\uFF12\uFF13\uFF14');
    await upload(page, '\uFF11\uFF12\uFF16\uFF0C\uFF15', '\uFF18\uFF12');
    await waitSaved(page);
    expect(await page.textContent('#upload-status')).toMatch(/^Saved: 126\.5 over 82 mmHg/);
    expect((await rows(page)).map((r) => [r[1], r[2]])).toEqual([['126.5', '82']]);
    expectClean(w);
    await w.context.close();
  });

  // Every script's decimal digits (\p{Nd}), as full-width ones are: an Arabic, Persian or Hindi keyboard types its own.
  // "١٣٢" was refused as "must be a number".
  it("takes a reading and a CPR number typed in any script's decimal digits, and refuses other characters as before", async () => {
    const w = await open();
    const { page } = w;
    // Arabic-Indic 250512-1234, the hyphen ASCII.
    await enterCpr(page, '\u0662\u0665\u0660\u0665\u0661\u0662-\u0661\u0662\u0663\u0664');
    expect(await page.textContent('#cpr-masked')).toBe('\u2022\u2022\u2022\u2022\u2022\u2022-1234');
    await upload(page, '\u0661\u0663\u0662', '\u06F8\u06F5'); // Arabic-Indic 132, Extended Arabic-Indic (Persian) 85
    await waitSaved(page);
    expect(await page.textContent('#upload-status')).toMatch(/^Saved: 132 over 85 mmHg/);
    await upload(page, '\u0967\u0968\u096A,\u096B', '\u0AEE\u0AE6', await localTime(page, 1)); // Devanagari 124,5; Gujarati 80
    await waitSaved(page);
    // The Arabic decimal separator, as an Arabic keyboard types it with its digits: Arabic-Indic 126.5 (it was refused).
    await upload(page, '\u0661\u0662\u0666\u066B\u0665', '\u0667\u0668', await localTime(page, 2));
    await waitSaved(page);
    expect((await rows(page)).map((r) => [r[1], r[2]])).toEqual([['132', '85'], ['124.5', '80'], ['126.5', '78']]);
    // Anything else is refused with the page's message, which shows what to write, before anything is sent: a letter
    // among the digits, the Arabic thousands separator, digits that are no decimal digits (Ethiopic).
    const posts = w.posts();
    for (const typed of ['\u0661\u0663a', '\u0661\u0662\u0666\u066C\u0665', '\u1372\u1369']) {
      await upload(page, typed, '80');
      expect(await errorOf(page, 'systolic')).toEqual(expect.objectContaining({ invalid: 'true', text: 'Systolic must be a number with at most two decimals, e.g. 126 or 126.5.' }));
    }
    expect(w.posts()).toBe(posts);
    expectClean(w);
    await w.context.close();
  });

  // Pasted from a text message or a document, a CPR number may carry a minus sign for its hyphen, a soft hyphen, or the
  // invisible direction marks of Arabic or Hebrew text; the page refused them, with a message that named nothing the
  // patient could see.
  it('takes a CPR number pasted with a minus sign, a soft hyphen or invisible direction marks, and a reading with the marks', async () => {
    const w = await open();
    const { page } = w;
    const pasted = [
      '251248\u22121234', // MINUS SIGN for the hyphen
      '\u200E251248\u00AD-1234\u200F', // LEFT-TO-RIGHT MARK, SOFT HYPHEN, RIGHT-TO-LEFT MARK
      '\u061C\u0662\u0665\u0660\u0665\u0661\u0662\u2212\u0661\u0662\u0663\u0664', // ARABIC LETTER MARK, Arabic-Indic digits
    ];
    for (const cpr of pasted) {
      await enterCpr(page, cpr);
      expect(await page.textContent('#cpr-masked')).toBe('\u2022\u2022\u2022\u2022\u2022\u2022-1234');
      await page.click('#forget');
    }
    await enterCpr(page, '\u200F120345-1234\u200F');
    await upload(page, '\u200F\u0661\u0663\u0662', '\u061C85');
    await waitSaved(page);
    expect(await page.textContent('#upload-status')).toMatch(/^Saved: 132 over 85 mmHg/);
    expectClean(w);
    await w.context.close();
  });

  // Its first label, the day's date at midnight, was missing: the ticks began at the first whole hour after the start.
  it("labels the time axis of a one-day period with hours, from the day's date at its midnight", async () => {
    const w = await open();
    const { page } = w;
    await enterCpr(page, '101112-1234');
    const today = (await localTime(page, 0)).slice(0, 10);
    await page.fill('#from', today);
    await page.fill('#to', today);
    await page.click('#range-form button[type=submit]');
    // A chosen period ends at a time of day, a preset "now".
    await page.waitForFunction(() => /reading.* to .*\d\.$/.test(document.getElementById('period')!.textContent ?? ''));
    const labels = await page.$$eval('#chart svg g text[text-anchor="middle"]:not(.nodata)', (ts) => ts.map((t) => t.textContent));
    expect(labels.length).toBeGreaterThanOrEqual(2);
    expect(labels[0]).toBe(new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short', timeZone: 'UTC' }).format(new Date(`${today}T12:00:00Z`)));
    expect(labels[1]).toMatch(/^\d\d:00$/);
    expectClean(w);
    await w.context.close();
  });

  it('fits a 360 px wide phone screen: nothing overflows sideways', async () => {
    const w = await open({ width: 360, height: 740 });
    const { page } = w;
    const width = () => page.evaluate(() => document.documentElement.scrollWidth);
    expect(await width()).toBeLessThanOrEqual(360);
    await enterCpr(page);
    expect(await rows(page)).not.toHaveLength(0); // the readings of the first test
    expect(await width()).toBeLessThanOrEqual(360);
    await upload(page, '90', '95'); // errors showing
    expect(await width()).toBeLessThanOrEqual(360);
    const svgWidth = await page.evaluate(() => document.querySelector('#chart svg')!.getBoundingClientRect().right);
    expect(svgWidth).toBeLessThanOrEqual(360);
    await page.screenshot({ path: join(SHOTS, 'phone-360.png'), fullPage: true });
    expectClean(w);
    await w.context.close();
  });

  it('screenshot: the graph of a patient with readings is drawn (fails on an empty graph)', async () => {
    const w = await open({ width: 900, height: 900 });
    const { page } = w;
    await enterCpr(page, '040506-7890');
    const emptyShot = await page.locator('#chart').screenshot({ path: join(SHOTS, 'graph-empty.png'), animations: 'disabled' });
    const empty = decodePng(emptyShot);
    for (const [s, d, ago] of [[128, 82, 6], [135, 88, 5], [122, 79, 4], [141, 91, 3], [126, 70, 2], [119, 75, 1]] as const) {
      await upload(page, String(s), String(d), await localTime(page, ago));
      await waitSaved(page);
    }
    const shot = await page.locator('#chart').screenshot({ path: join(SHOTS, 'graph.png'), animations: 'disabled' });
    writeFileSync(join(SHOTS, 'page.png'), await page.screenshot({ fullPage: true }));
    const graph = decodePng(shot);
    const area = graph.width * graph.height;
    // Both series are on screen, each in its own colour: lines and markers cover a clear share of the plot.
    const sys = countColour(graph, SYS_COLOUR);
    const dia = countColour(graph, DIA_COLOUR);
    expect(sys).toBeGreaterThan(area / 800);
    expect(dia).toBeGreaterThan(area / 800);
    expect(countColour(empty, SYS_COLOUR) + countColour(empty, DIA_COLOUR)).toBeLessThan(area / 4000);
    // And the picture differs clearly from the empty graph's.
    let differ = 0;
    if (empty.width === graph.width && empty.height === graph.height) {
      for (let o = 0; o < graph.pixels.length; o += 4) {
        if (Math.abs(graph.pixels[o]! - empty.pixels[o]!) + Math.abs(graph.pixels[o + 1]! - empty.pixels[o + 1]!) + Math.abs(graph.pixels[o + 2]! - empty.pixels[o + 2]!) > 60) differ++;
      }
    } else differ = area;
    expect(differ).toBeGreaterThan(area / 200);
    expectClean(w);
    await w.context.close();
  });
});
