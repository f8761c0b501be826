import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DateTime } from 'luxon';
import { buildDocument, createTeleObservation, openTeleMed, type EmbeddedTeleMed } from '../../src';
import { idempotencyKey } from '../../src/adapters/http/schemas';
import { CORRECTION_OPTIONS, RECORD_OPTIONS, SUBMIT_OPTIONS } from '../../src/bootstrap/library-options';

/**
 * The README is ~2,100 lines: its Contents list is how a reader finds a section. It must name every section (a new
 * one left out is one nobody finds) and every link in it, and every in-page link of the README and the messaging
 * guide, must lead to a heading that exists (a renamed heading breaks them without a word).
 */
const ROOT = join(__dirname, '..', '..');
const read = (file: string): string => readFileSync(join(ROOT, file), 'utf8');

/** GitHub's anchor of a heading: lower case, punctuation dropped, each space a hyphen; repeats get -1, -2, ... */
const anchorsOf = (markdown: string): Set<string> => {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (line.startsWith('```')) fenced = !fenced;
    const heading = !fenced && /^#{1,6} (.+)$/.exec(line);
    if (!heading) continue;
    const base = heading[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
};
const inPageLinks = (text: string): string[] => [...text.matchAll(/\]\(#([^)\s]+)\)/g)].map((m) => m[1]!);

describe('README: the Contents list', () => {
  const readme = read('README.md');
  const contents = /\n## Contents\n([\s\S]*?)\n## /.exec(readme)?.[1] ?? '';
  const sections = readme
    .split('\n')
    .filter((line) => line.startsWith('## ') && line !== '## Contents')
    .map((line) => line.slice(3));

  it('is there, before the first section', () => {
    expect(contents).not.toBe('');
    expect(readme.indexOf('## Contents')).toBeLessThan(readme.indexOf(`## ${sections[0]}`));
  });

  it.each(sections)('links "%s"', (section) => {
    const anchor = [...anchorsOf(`## ${section}`)][0]!;
    expect(inPageLinks(contents)).toContain(anchor);
  });

  it('links each section once', () => {
    const links = inPageLinks(contents);
    expect(new Set(links).size).toBe(links.length);
  });

  it('links the files it names', () => {
    const files = [...contents.matchAll(/\]\(([^#)][^)]*)\)/g)].map((m) => m[1]!);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) expect(() => read(file)).not.toThrow();
  });
});

describe.each(['README.md', 'docs/messaging.md'])('%s: in-page links', (file) => {
  const text = read(file);
  const anchors = anchorsOf(text);
  it.each(inPageLinks(text))('#%s leads to a heading', (link) => {
    expect(anchors).toContain(link);
  });
});

describe('the anchors, as GitHub makes them', () => {
  it('drops punctuation and numbers repeats', () => {
    expect([...anchorsOf("## The patient's page (HomeClient on the web)\n## Distributed setup: high availability\n### Order\n### Order")]).toEqual([
      'the-patients-page-homeclient-on-the-web',
      'distributed-setup-high-availability',
      'order',
      'order-1',
    ]);
  });

  it('would catch a link to a heading that is gone', () => {
    expect(anchorsOf('## Message security')).not.toContain('message-securities');
  });
});

describe('README: "Embedding the core" names every option the calls take', () => {
  // The section says "an option not listed here is refused": one the library takes but the section never names is a
  // promise broken the other way (measuredAtDefaulted was taken by record, and changes what a repeat answers).
  const section = /\n## Embedding the core\n([\s\S]*?)\n## /.exec(read('README.md'))?.[1] ?? '';
  const keys = [...new Set([RECORD_OPTIONS, SUBMIT_OPTIONS, CORRECTION_OPTIONS].flatMap((schema) => Object.keys(schema.shape)))];

  it.each(keys)('%s', (key) => {
    expect(section).not.toBe('');
    expect(section).toMatch(new RegExp(`\\b${key}\\b`));
  });
});

describe('README: "Embedding the core" gives the codes the library refuses an id of the wrong form with', () => {
  // The section said the library refuses "with the same codes" as HTTP. An observationId or correctionId of the wrong
  // form, or a CPR number as a whole, is HTTP's 400 invalid_request (its schema), and the library's code of the call's
  // input: a backend team that matched on invalid_request, as the README led it to, matched nothing.
  const section = (/\n## Embedding the core\n([\s\S]*?)\n## /.exec(read('README.md'))?.[1] ?? '').replace(/\n/g, ' ');
  const sentences = section.split(/(?<=\.) (?=[A-Z`])/);
  const now = DateTime.utc();
  const reading = createTeleObservation({ patientId: '251248-1234', systolic: 126, diastolic: 70, measuredAt: now.minus({ minutes: 5 }) }, now);
  const { metadata, document } = buildDocument(reading);
  const calls: [string, (rts: EmbeddedTeleMed, uniqueId: string, id: string) => Promise<unknown>][] = [
    ['record', (rts, _, id) => rts.telemed.record(reading, { observationId: id })],
    ['correct', (rts, uniqueId, id) => rts.telemed.correct(uniqueId, reading, { correctionId: id })],
    ['rts.xds.provideAndRegisterDocument', (rts, _, id) => rts.xds.provideAndRegisterDocument(metadata, document, { observationId: id })],
    ['correctDocument', (rts, uniqueId, id) => rts.xds.correctDocument(uniqueId, metadata, document, { correctionId: id })],
  ];

  it.each(calls)('%s', async (name, call) => {
    const rts = await openTeleMed({ inMemory: true });
    try {
      const { uniqueId } = await rts.telemed.record(reading, { observationId: 'stored-1' });
      for (const id of ['a b', '010203-4321']) {
        expect(idempotencyKey.safeParse(id).success).toBe(false); // over HTTP: 400 invalid_request
        const code = ((await call(rts, uniqueId, id).then(() => null, (e: unknown) => e)) as { code?: string } | null)?.code;
        expect(code).toMatch(/^invalid_/);
        const saying = sentences.filter((s) => s.includes(`\`${name}\``) && s.includes(`\`${code}\``) && s.includes('`invalid_request`'));
        expect({ name, code, saying: saying.length > 0 }).toEqual({ name, code, saying: true });
      }
    } finally {
      await rts.close();
    }
  });
});
