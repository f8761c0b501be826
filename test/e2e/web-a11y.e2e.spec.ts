import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { chromiumUnavailable, startHubAndChromium } from '../support/browser';
import { tempDataDir, type HubProcess } from '../support/hub-process';

/**
 * The patient's page against the findings of an accessibility audit (WCAG 2.2 AA, 2026-12-02), in Chromium as
 * web.e2e.spec.ts drives it: live regions in the accessibility tree before their first message, errors said when
 * Enter is pressed in the field at fault, a first load that says it is loading and sends one search however often
 * Enter is pressed, the focus kept on the Upload button while it works, a warning before a sign-in link's token
 * runs out and the typed reading kept when the same patient signs in again, the hub's refusals in plain words, no
 * CPR number cut short, the graph's name and description, dates in the page's language, and the page's title.
 */
// The callbacks given to page.evaluate run in the browser; tsconfig has no DOM lib (see web.e2e.spec.ts).
type El = {
  id: string;
  hidden: boolean;
  tagName: string;
  textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): El | null;
  querySelectorAll(selector: string): Iterable<El> & ArrayLike<El>;
};
declare const document: {
  title: string;
  body: El;
  activeElement: El | null;
  getElementById(id: string): El | null;
  querySelector(selector: string): El | null;
  querySelectorAll(selector: string): Iterable<El> & ArrayLike<El>;
};
declare const getComputedStyle: (element: El, pseudo?: string) => { outlineStyle: string; outlineColor: string; fill: string; stroke: string; content: string; display: string; color: string; backgroundColor: string; borderTopColor: string; colorScheme: string };
declare const sessionStorage: { length: number; key(i: number): string | null; getItem(key: string): string | null };
declare const location: { hash: string };
declare class MutationObserver {
  constructor(callback: () => void);
  observe(target: El, options: { childList?: boolean; characterData?: boolean; subtree?: boolean }): void;
}
declare const window: { spoken: string[] };

const BASE_TITLE = 'My blood pressure – TeleMed';
const noBrowser = chromiumUnavailable();
const describeWeb = noBrowser ? describe.skip : describe;

describeWeb('the review page: the accessibility audit of 2026-12-02', () => {
  const data = tempDataDir('rts-web-a11y-e2e-');
  let hub: HubProcess;
  let browser: Browser;

  beforeAll(async () => {
    ({ hub, browser } = await startHubAndChromium(data.dir));
  });

  afterAll(async () => {
    await browser?.close();
    await hub?.stop();
    data.remove();
  });

  type Tab = Readonly<{ context: BrowserContext; page: Page; problems: string[] }>;
  const open = async (options: { locale?: string; before?: (page: Page) => Promise<unknown>; path?: string } = {}): Promise<Tab> => {
    const context = await browser.newContext({ viewport: { width: 1024, height: 800 }, locale: options.locale ?? 'en-GB', timezoneId: 'Europe/Copenhagen' });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    await options.before?.(page);
    await page.goto(`${hub.url}${options.path ?? '/app/'}`);
    return { context, page, problems };
  };

  const enterCpr = async (page: Page, cpr: string): Promise<void> => {
    await page.fill('#cpr', cpr);
    await page.click('#cpr-form button[type=submit]');
    await page.waitForSelector('#review:not([hidden])');
    await page.waitForFunction(() => /reading/.test(document.getElementById('period')!.textContent ?? ''));
  };

  const text = (page: Page, id: string): Promise<string> => page.evaluate((i) => document.getElementById(i)?.textContent ?? '', id);
  const focused = (page: Page): Promise<string> => page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName || '');

  /** Store a reading through the API, as the page would (a dev-login token). */
  const store = async (cpr: string, systolic: number, diastolic: number, measuredAt?: string): Promise<void> => {
    const login = await fetch(`${hub.url}/auth/dev-login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ role: 'patient', patient: cpr }) });
    const { token } = (await login.json()) as { token: string };
    const res = await fetch(`${hub.url}/observations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ patientId: cpr, systolic, diastolic, ...(measuredAt ? { measuredAt } : {}) }),
    });
    expect(res.status).toBe(201);
  };

  /** A patient's token as a sign-in page hands it over, with a lifetime of its own: the hub's token.js. */
  const mint = (cpr: string, ttl: number): string =>
    execFileSync(process.execPath, [join(__dirname, '..', '..', 'dist', 'bootstrap', 'token.js'), '--role', 'patient', '--patient', '-', '--ttl', String(ttl)], {
      input: `${cpr}\n`,
      env: { ...process.env, RTS_DATA_DIR: data.dir },
    })
      .toString()
      .trim();

  /** How Chromium's accessibility tree (what a screen reader gets) holds the element with this id. */
  const axNode = async (cdp: CDPSession, id: string): Promise<{ role: string; name: string; description: string } | 'missing' | 'ignored'> => {
    const { result } = await cdp.send('Runtime.evaluate', { expression: `document.getElementById(${JSON.stringify(id)})` });
    if (!result.objectId) return 'missing';
    const { node } = await cdp.send('DOM.describeNode', { objectId: result.objectId });
    const { nodes } = await cdp.send('Accessibility.getPartialAXTree', { backendNodeId: node.backendNodeId, fetchRelatives: false });
    const n = nodes[0]!;
    if (n.ignored) return 'ignored';
    return { role: String(n.role?.value ?? ''), name: String(n.name?.value ?? ''), description: String(n.description?.value ?? '') };
  };
  const cdpOf = async (tab: Tab): Promise<CDPSession> => {
    const cdp = await tab.context.newCDPSession(tab.page);
    await cdp.send('DOM.enable');
    await cdp.send('Accessibility.enable');
    return cdp;
  };

  it('keeps every live region in the accessibility tree before its first message', async () => {
    const tab = await open();
    const cdp = await cdpOf(tab);
    const live = async (id: string) => {
      const n = await axNode(cdp, id);
      return typeof n === 'string' ? n : n.role;
    };
    expect(await live('who-status')).toBe('status'); // the CPR form's messages
    await enterCpr(tab.page, '210190-1234');
    expect(await text(tab.page, 'upload-status')).toBe('');
    expect(await live('upload-status')).toBe('status'); // was ignored: .status:empty{display:none}
    expect(await text(tab.page, 'session-status')).toBe('');
    expect(await live('session-status')).toBe('alert'); // the sign-in's time limit
    expect(await live('period')).toBe('status');
    expect(tab.problems).toEqual([]);
    await tab.context.close();
  });

  it('says a CPR form error in its live region when Enter is pressed in the focused field, every time', async () => {
    const tab = await open();
    const { page } = tab;
    // Record each text the form's live region gets, as a screen reader hears each change.
    await page.evaluate(() => {
      window.spoken = [];
      const region = document.getElementById('who-status');
      if (!region) return;
      new MutationObserver(() => {
        if (region.textContent) window.spoken.push(region.textContent);
      }).observe(region, { childList: true, characterData: true, subtree: true });
    });
    await page.focus('#cpr');
    await page.keyboard.type('0101');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => window.spoken.length === 1, null, { timeout: 5000 });
    expect(await focused(page)).toBe('cpr');
    await page.keyboard.press('Enter'); // the same mistake again: said again
    await page.waitForFunction(() => window.spoken.length === 2, null, { timeout: 5000 });
    const spoken = await page.evaluate(() => window.spoken);
    expect(spoken[0]).toMatch(/A CPR number has 10 digits; this has 4/);
    expect(spoken[1]).toBe(spoken[0]);
    // The field is marked and described by the same words.
    expect(await page.getAttribute('#cpr', 'aria-invalid')).toBe('true');
    expect(await text(page, 'cpr-error')).toBe(spoken[0]);
    expect(await page.title()).toBe(`Error: CPR number – ${BASE_TITLE}`);
    await tab.context.close();
  });

  it('says "Loading your readings…" while the first load waits, and sends one search however often Enter is pressed', async () => {
    let searches = 0;
    const tab = await open({
      before: (page) =>
        page.route('**/observations/search', async (route) => {
          searches++;
          await new Promise((r) => setTimeout(r, 2500));
          await route.continue();
        }),
    });
    const { page } = tab;
    await page.fill('#cpr', '220190-1234');
    await page.press('#cpr', 'Enter');
    await page.waitForFunction(() => /Loading your readings/.test(document.getElementById('who-status')?.textContent ?? ''), null, { timeout: 2000 });
    expect(await page.getAttribute('#cpr-form', 'aria-busy')).toBe('true');
    await page.press('#cpr', 'Enter');
    await page.press('#cpr', 'Enter');
    expect(await page.getAttribute('#cpr-form button[type=submit]', 'aria-disabled')).toBe('true'); // keeps its focus, unlike disabled
    await page.click('#cpr-form button[type=submit]', { force: true }); // a click on the busy button sends nothing either
    await page.waitForSelector('#review:not([hidden])', { timeout: 20000 });
    await page.waitForTimeout(300);
    expect(searches).toBe(1);
    expect(await page.getAttribute('#cpr-form', 'aria-busy')).toBeNull();
    expect(await text(page, 'who-status')).toBe('');
    expect(await page.title()).toBe(`Your readings – ${BASE_TITLE}`);
    await tab.context.close();
  });

  it('keeps the focus on the Upload button while it uploads (not the page body), and sends the reading once', async () => {
    const tab = await open();
    const { page } = tab;
    await enterCpr(page, '230190-1234');
    let posts = 0;
    await page.route('**/observations', async (route) => {
      posts++;
      await new Promise((r) => setTimeout(r, 1500));
      await route.continue();
    });
    await page.fill('#systolic', '124');
    await page.fill('#diastolic', '78');
    await page.focus('#upload-btn');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => /Uploading/.test(document.getElementById('upload-status')!.textContent ?? ''));
    expect(await focused(page)).toBe('upload-btn');
    expect(await page.getAttribute('#upload-btn', 'aria-disabled')).toBe('true');
    await page.keyboard.press('Enter'); // pressed again while busy: nothing more is sent
    await page.waitForFunction(() => /^Saved/.test(document.getElementById('upload-status')!.textContent ?? ''), null, { timeout: 20000 });
    expect(await focused(page)).toBe('upload-btn');
    expect(await page.getAttribute('#upload-btn', 'aria-disabled')).toBeNull();
    expect(posts).toBe(1);
    await tab.context.close();
  });

  it("warns before a sign-in link's token runs out, and keeps the typed reading when the same patient signs in again", async () => {
    const cpr = '240190-1234';
    const ttl = 130; // the warning comes 2 minutes before the end: after about 10 s
    const token = mint(cpr, ttl);
    const exp = (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp;
    // A hub without the local dev login, where only the sign-in page hands out tokens.
    const tab = await open({ before: (page) => page.route('**/auth/dev-login', (route) => route.fulfill({ status: 404, contentType: 'application/json', body: '{}' })), path: `/app/#token=${token}` });
    const { page } = tab;
    await enterCpr(page, cpr);
    await page.fill('#systolic', '133');
    await page.fill('#diastolic', '84');
    await page.waitForFunction(() => /Your sign-in ends at \d\d:\d\d, in about 2 minutes/.test(document.getElementById('session-status')!.textContent ?? ''), null, { timeout: 30000 });
    expect(Date.now() / 1000).toBeLessThan(exp - 60);
    const warning = await text(page, 'session-status');
    expect(warning).toMatch(/open the link from your sign-in page again, in this tab: what you typed stays in the form/);
    expect(await page.getAttribute('#session-status', 'role')).toBe('alert');

    // The token runs out (the hub answers 401, as it does after exp): not saved, and said so.
    const bodies: string[] = [];
    await page.route('**/observations', (route) => {
      bodies.push(route.request().postData() ?? '');
      return route.fulfill({ status: 401, contentType: 'application/problem+json', body: JSON.stringify({ status: 401, code: 'unauthenticated', title: 'Authentication required', detail: 'the token has expired' }) });
    });
    await page.click('#upload-btn');
    await page.waitForFunction(() => /^Not saved\. Your sign-in has ended/.test(document.getElementById('upload-status')!.textContent ?? ''));
    await page.unroute('**/observations');
    expect(await text(page, 'session-status')).toMatch(/Your sign-in has ended/);

    // The patient follows the sign-in link again, in this tab: the same patient, so nothing is lost.
    const again = mint(cpr, 3600);
    await page.evaluate((t) => (location.hash = `#token=${t}`), again);
    await page.waitForFunction(() => /signed in again/.test(document.getElementById('session-status')!.textContent ?? ''));
    expect(await page.isVisible('#review')).toBe(true);
    expect(await page.inputValue('#systolic')).toBe('133');
    expect(await page.inputValue('#diastolic')).toBe('84');
    const kept = await page.evaluate(() => Array.from({ length: sessionStorage.length }, (_, i) => `${sessionStorage.key(i)}=${sessionStorage.getItem(sessionStorage.key(i)!)}`).join('\n'));
    expect(kept).toMatch(/telemed\.draft=/);
    expect(kept).not.toMatch(/240190-?1234/); // the CPR number stays in memory only
    expect(await page.evaluate(() => sessionStorage.getItem('telemed.token'))).toBe(again);
    // Upload now stores the reading, under the id it was first sent with.
    const sent = page.waitForRequest((r) => r.method() === 'POST' && r.url().endsWith('/observations'));
    await page.click('#upload-btn');
    const id = JSON.parse((await sent).postData() ?? '{}').observationId;
    await page.waitForFunction(() => /^Saved/.test(document.getElementById('upload-status')!.textContent ?? ''));
    expect(id).toBe(JSON.parse(bodies[0]!).observationId);
    expect(tab.problems).toEqual([]);
    await tab.context.close();
  }, 90000);

  it("says the hub's refusals in plain words with what to do, marks only the field at fault, and puts a lost connection on the form", async () => {
    const tab = await open();
    const { page } = tab;
    // No real date in the CPR number (the hub: "ddmmyy is not a calendar date for the century its serial implies").
    await page.fill('#cpr', '300248-1234');
    await page.press('#cpr', 'Enter');
    await page.waitForFunction(() => !document.getElementById('cpr-error')!.hidden);
    expect(await text(page, 'cpr-error')).toMatch(/^The first six digits of this CPR number are not a real date \(day, month, year\)\. Check them/);
    expect(await text(page, 'cpr-error')).not.toMatch(/ddmmyy|century|serial/);

    // The hub cannot be reached: said for the form; the CPR number (a correct one) is not marked invalid.
    await page.route('**/observations/search', (route) => route.abort('connectionrefused'));
    await page.fill('#cpr', '250190-1234');
    await page.press('#cpr', 'Enter');
    await page.waitForFunction(() => /cannot be reached/.test(document.getElementById('who-status')!.textContent ?? ''));
    expect(await page.getAttribute('#cpr', 'aria-invalid')).toBeNull();
    expect(await page.isHidden('#cpr-error')).toBe(true);
    await page.unroute('**/observations/search');

    await enterCpr(page, '250190-1234');
    // A time in the future (the hub's clock decides): "lies in the future (the hub says)" and "The observation has
    // implausible values" were the page's words.
    const future = await page.evaluate(() => {
      const x = new Date(Date.now() + 2 * 86_400_000);
      const p = (n: number) => String(n).padStart(2, '0');
      return `${x.getFullYear()}-${p(x.getMonth() + 1)}-${p(x.getDate())}T09:15`;
    });
    await page.fill('#systolic', '130');
    await page.fill('#diastolic', '85');
    await page.fill('#measured', future);
    await page.click('#upload-btn');
    await page.waitForFunction(() => !document.getElementById('measured-error')!.hidden);
    expect(await text(page, 'measured-error')).toBe('This time is later than now. Check the date and the time, or leave the field empty if you took the reading just now.');
    expect(await page.getAttribute('#measured', 'aria-invalid')).toBe('true');
    expect(await text(page, 'upload-status')).toBe('Not saved. Please correct the time of reading: see the message at the field.');
    expect(await focused(page)).toBe('measured');
    expect(await page.title()).toBe(`Error: reading not saved – Your readings – ${BASE_TITLE}`);

    // A period without a to date: only To is marked.
    await page.fill('#to', '');
    await page.click('#range-form button[type=submit]');
    expect(await text(page, 'range-error')).toMatch(/Choose a to date/);
    expect(await page.getAttribute('#to', 'aria-invalid')).toBe('true');
    expect(await page.getAttribute('#from', 'aria-invalid')).toBeNull();
    await tab.context.close();
  });

  it('does not cut a CPR number short: too many digits are said, spaces are taken', async () => {
    const tab = await open();
    const { page } = tab;
    expect(await page.getAttribute('#cpr', 'maxlength')).toBeNull();
    await page.fill('#cpr', '010190-12345');
    expect(await page.inputValue('#cpr')).toBe('010190-12345');
    await page.press('#cpr', 'Enter');
    await page.waitForFunction(() => !document.getElementById('cpr-error')!.hidden);
    expect(await text(page, 'cpr-error')).toMatch(/A CPR number has 10 digits; this has 11/);
    expect(await page.isHidden('#review')).toBe(true);
    await page.fill('#cpr', '260190\u20131234'); // an en dash, as a word processor writes it: taken
    await page.press('#cpr', 'Enter');
    await page.waitForSelector('#review:not([hidden])');
    await page.click('#forget');
    await page.fill('#cpr', '26 01 90 1234');
    expect(await page.inputValue('#cpr')).toBe('26 01 90 1234');
    await page.press('#cpr', 'Enter');
    await page.waitForSelector('#review:not([hidden])');
    // Full-width digits and hyphen, as a Chinese or Japanese input method types them in full-width mode: taken.
    await page.click('#forget');
    await page.fill('#cpr', '\uFF12\uFF16\uFF10\uFF11\uFF19\uFF10\uFF0D\uFF11\uFF12\uFF13\uFF14');
    await page.press('#cpr', 'Enter');
    await page.waitForSelector('#review:not([hidden])');
    // The number shown masked is read as words, not "bullet bullet ...".
    expect(await text(page, 'cpr-spoken')).toBe('CPR number ending in 1234');
    expect(await page.evaluate(() => document.getElementById('cpr-masked')!.querySelector('*') === null && document.querySelector('[aria-hidden="true"] #cpr-masked') !== null)).toBe(true);
    await tab.context.close();
  });

  it("names the graph by its title, describes it by its summary, and hides its marks (the table has the data)", async () => {
    const cpr = '270190-1234';
    for (const [s, d, ago] of [[128, 82, 3], [135, 88, 2], [122, 79, 1]] as const) await store(cpr, s, d, new Date(Date.now() - ago * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z'));
    const tab = await open();
    const { page } = tab;
    await enterCpr(page, cpr);
    const svg = await page.evaluate(() => {
      const e = document.querySelector('#chart svg')!;
      return { labelledby: e.getAttribute('aria-labelledby'), describedby: e.getAttribute('aria-describedby'), series: [...e.querySelectorAll('g.series')].map((g) => g.getAttribute('aria-hidden')) };
    });
    expect(svg).toEqual({ labelledby: 'chart-title', describedby: 'chart-desc', series: ['true', 'true'] });
    const cdp = await cdpOf(tab);
    await page.evaluate(() => document.querySelector('#chart svg')!.getAttribute('id')); // settle
    const { nodes } = await cdp.send('Accessibility.getFullAXTree');
    const image = nodes.find((n) => !n.ignored && n.role?.value === 'image' && /Blood pressure graph/.test(String(n.name?.value ?? '')));
    expect(image?.name?.value).toBe('Blood pressure graph, systolic and diastolic in mmHg');
    expect(String(image?.description?.value ?? '')).toMatch(/^3 readings from .* Systolic 122 to 135 mmHg/);
    expect(nodes.filter((n) => !n.ignored && /graphics-symbol|SvgRoot/.test(String(n.role?.value ?? '')) && n.nodeId !== image?.nodeId)).toEqual([]);
    await tab.context.close();
  });

  it('writes dates in English (en-GB) under a Danish browser locale, without a double full stop', async () => {
    const cpr = '280190-1234';
    await store(cpr, 126, 80, new Date(Date.now() - 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z'));
    const tab = await open({ locale: 'da-DK' });
    const { page } = tab;
    await enterCpr(page, cpr);
    const period = await text(page, 'period');
    expect(period).toMatch(/^1 reading from \d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d to now \(as of \d\d:\d\d\)\.$/);
    const firstRow = await page.textContent('#readings tbody tr td');
    expect(firstRow).toMatch(/^\d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d$/);
    const desc = await text(page, 'chart-desc');
    expect(desc).toMatch(/^1 reading from \d{1,2} [A-Z][a-z]{2} to \d{1,2} [A-Z][a-z]{2}\. /);
    expect(`${period} ${desc}`).not.toMatch(/\.\.|nov\.|dec\.|kl\./);
    await tab.context.close();
  });

  it('names the state in the title, shows the focus on the heading and the skip link, and the pressed period in forced colours', async () => {
    const tab = await open();
    const { page } = tab;
    expect(await page.title()).toBe(BASE_TITLE);
    await page.keyboard.press('Tab'); // the skip link
    const skip = await page.evaluate(() => getComputedStyle(document.activeElement!).outlineColor);
    expect(skip).toBe('rgb(255, 255, 255)'); // white on the blue header (the blue outline was 1:1)
    await enterCpr(page, '290190-1234');
    expect(await page.title()).toBe(`Your readings – ${BASE_TITLE}`);
    expect(await focused(page)).toBe('review-h');
    expect(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle)).toBe('solid');
    // A date field's calendar button (its fourth Tab stop, after day, month and year) keeps the field's focus ring.
    await page.focus('#from');
    for (let i = 0; i < 3; i++) await page.keyboard.press('Tab');
    expect(await focused(page)).toBe('from');
    expect(await page.evaluate(() => getComputedStyle(document.activeElement!).outlineStyle)).toBe('solid');
    await page.fill('#systolic', '');
    await page.fill('#diastolic', '80');
    await page.click('#upload-btn');
    expect(await page.title()).toBe(`Error: 1 field to correct – Your readings – ${BASE_TITLE}`);
    // Forced colours: the graph's text in the system's text colour, the pressed period marked by more than colour.
    await page.emulateMedia({ forcedColors: 'active' });
    const forced = await page.evaluate(() => ({
      text: getComputedStyle(document.querySelector('#chart svg text')!).fill,
      pressed: getComputedStyle(document.querySelector('.preset[aria-pressed="true"]')!, '::before').content,
      notPressed: getComputedStyle(document.querySelector('.preset[aria-pressed="false"]')!, '::before').content,
    }));
    expect(forced.text).not.toBe('rgb(77, 86, 97)');
    expect(forced.pressed).toMatch(/✓/);
    expect(forced.notPressed).toBe('none');
    await tab.context.close();
  });
  /** WCAG's contrast ratio of two computed colours (`rgb(r, g, b)`; both opaque here). */
  const contrast = (a: string, b: string): number => {
    const lum = (c: string): number => {
      const [r, g, bl] = (c.match(/\d+(\.\d+)?/g) ?? []).slice(0, 3).map((v) => {
        const x = Number(v) / 255;
        return x <= 0.04045 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
      });
      return 0.2126 * r! + 0.7152 * g! + 0.0722 * bl!;
    };
    const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
    return (hi! + 0.05) / (lo! + 0.05);
  };

  it('follows a dark system theme, with the contrasts of the light one (text 4.5:1, graph marks and field borders 3:1)', async () => {
    const cpr = '280190-1234';
    for (const [s, d, ago] of [[128, 82, 2], [122, 79, 1]] as const) await store(cpr, s, d, new Date(Date.now() - ago * 86_400_000).toISOString().replace(/\.\d{3}Z$/, 'Z'));
    const measured: Record<string, Record<string, number | string>> = {};
    for (const scheme of ['light', 'dark'] as const) {
      const context = await browser.newContext({ viewport: { width: 1024, height: 800 }, locale: 'en-GB', timezoneId: 'Europe/Copenhagen', colorScheme: scheme });
      const page = await context.newPage();
      await page.goto(`${hub.url}/app/`);
      await enterCpr(page, cpr);
      await page.fill('#systolic', '');
      await page.fill('#diastolic', '80');
      await page.click('#upload-btn'); // a field error, in the error colour
      await page.waitForSelector('.error:not([hidden]):not(:empty)');
      const c = await page.evaluate(() => {
        const style = (selector: string, pseudo?: string) => getComputedStyle(document.querySelector(selector)!, pseudo);
        const body = style('body');
        return {
          scheme: getComputedStyle(document.querySelector('html')!).colorScheme,
          bg: body.backgroundColor,
          fg: body.color,
          hint: style('.hint').color,
          error: style('.error:not([hidden]):not(:empty)').color,
          top: style('.top').backgroundColor,
          topText: style('.top').color,
          button: style('#upload-btn').color,
          buttonBg: style('#upload-btn').backgroundColor,
          preset: style('.preset[aria-pressed="false"]').color,
          presetBg: style('.preset[aria-pressed="false"]').backgroundColor,
          pressed: style('.preset[aria-pressed="true"]').color,
          pressedBg: style('.preset[aria-pressed="true"]').backgroundColor,
          field: style('#diastolic').backgroundColor,
          fieldText: style('#diastolic').color,
          fieldBorder: style('#diastolic').borderTopColor,
          th: style('th').color,
          thBg: style('th').backgroundColor,
          chartBg: style('.chart').backgroundColor,
          axisText: style('#chart svg text').fill,
          sys: style('#chart svg .line.sys').stroke,
          dia: style('#chart svg .line.dia').stroke,
        };
      });
      measured[scheme] = {
        scheme: c.scheme,
        bg: c.bg,
        text: contrast(c.fg, c.bg),
        hint: contrast(c.hint, c.bg),
        error: contrast(c.error, c.bg),
        header: contrast(c.topText, c.top),
        button: contrast(c.button, c.buttonBg),
        preset: contrast(c.preset, c.presetBg),
        pressed: contrast(c.pressed, c.pressedBg),
        field: contrast(c.fieldText, c.field),
        fieldBorder: contrast(c.fieldBorder, c.bg),
        tableHead: contrast(c.th, c.thBg),
        axisText: contrast(c.axisText, c.chartBg),
        systolic: contrast(c.sys, c.chartBg),
        diastolic: contrast(c.dia, c.chartBg),
      };
      await context.close();
    }
    expect(measured.light!.bg).toBe('rgb(255, 255, 255)');
    expect(contrast(String(measured.dark!.bg), 'rgb(0, 0, 0)')).toBeLessThan(1.5); // a dark background, not the light one
    const below: string[] = [];
    for (const scheme of ['light', 'dark'] as const) {
      const m = measured[scheme]!;
      expect(m.scheme).toBe('light dark'); // the browser's own controls (the date pickers) follow the theme
      for (const text of ['text', 'hint', 'error', 'header', 'button', 'preset', 'pressed', 'field', 'tableHead', 'axisText']) if (!(Number(m[text]) >= 4.5)) below.push(`${scheme} ${text} ${m[text]}`);
      for (const mark of ['fieldBorder', 'systolic', 'diastolic']) if (!(Number(m[mark]) >= 3)) below.push(`${scheme} ${mark} ${m[mark]}`);
    }
    expect(below).toEqual([]);
  });
});
