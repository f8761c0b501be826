import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { openApiDocument } from '../../src/adapters/http/openapi';
import { DevLoginBody } from '../../src/adapters/http/security-schemas';
import { DiscardBody } from '../../src/adapters/http/dead-letter-routes';
import { ExpertsQuery } from '../../src/adapters/http/directory-routes';

/**
 * The text patterns of /openapi.json (a one-line `sub`, a term that is not only white space, a trimmed one-line
 * reason) read alike by ECMA-262 (ajv) and by Python's `re` (jsonschema, what the city systems' client is written
 * in), and both say what the hub's own schema says of the text: a client validating against the document neither
 * holds back a text the hub takes nor sends one it refuses. Every BMP character, alone, between letters and between
 * spaces, and texts made of spaces, line breaks and controls around a letter. Also none of the escapes RE2 (Go)
 * refuses or Java reads otherwise (`\u`, `\s`, `\S`, `\v`).
 */
const PYTHON = '/usr/bin/python3';
const available = existsSync(PYTHON);
if (!available) console.warn('text-patterns-python: skipped: /usr/bin/python3 is needed');
const maybe = available ? describe : describe.skip;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document, read as JSON
const doc = openApiDocument() as any;
const body = (path: string, method: string) => doc.paths[path][method].requestBody.content['application/json'].schema;
/** A field's text rule as the document says it: its `pattern` must be found, its `not: {pattern}` must not. */
type Rule = Readonly<{ name: string; pattern?: string; notPattern?: string; maxLength: number; hub: (text: string) => boolean }>;
const ruleOf = (name: string, schema: { pattern?: string; not?: { pattern?: string }; maxLength?: number }, hub: (text: string) => boolean): Rule => ({
  name,
  maxLength: schema.maxLength ?? Infinity,
  ...(schema.pattern === undefined ? {} : { pattern: schema.pattern }),
  ...(schema.not?.pattern === undefined ? {} : { notPattern: schema.not.pattern }),
  hub,
});
const RULES: readonly Rule[] = [
  ruleOf('dev-login sub', body('/auth/dev-login', 'post').properties.sub, (sub) => DevLoginBody.safeParse({ role: 'operator', sub }).success),
  ruleOf(
    'experts specialty',
    (doc.paths['/experts'].get.parameters as { name: string; schema: object }[]).find((p) => p.name === 'specialty')!.schema,
    (specialty) => ExpertsQuery.safeParse({ specialty }).success,
  ),
  ruleOf('discard reason', body('/dead-letters/{id}/discard', 'post').properties.reason, (reason) => DiscardBody.safeParse({ reason }).success),
];

const texts = (): string[] => {
  const out: string[] = [];
  for (let c = 0; c <= 0xffff; c++) {
    if (c >= 0xd800 && c <= 0xdfff) continue; // a lone surrogate is no text (the hub refuses it before any schema)
    const ch = String.fromCharCode(c);
    out.push(ch, `a${ch}b`, ` ${ch} `, `${ch}a`, `a${ch}`);
  }
  const around = [' ', '\t', '\n', '\r', '\u00a0', '\u2028', '\ufeff', '\u001c', '\u0085', '\u180e', '\u200b', '\u0001'];
  for (const x of around) for (const y of around) out.push(`${x}${y}`, `${x}a${y}`, `${x}a${y}b${x}`, `a${x}${y}`, `${x}${y}a`);
  out.push('😀', ' 😀 ', 'a'.repeat(100), `${' '.repeat(90)}\u0001`, `a${' '.repeat(90)}\u0001`, `${' '.repeat(450)}\u0001`, `a${' '.repeat(450)}b${' '.repeat(40)}`, `${'\n'.repeat(50)}a${'\t'.repeat(50)}`);
  return out;
};

maybe('the text patterns of the OpenAPI document, in ECMA-262 and in Python', () => {
  it('each rule has its pattern in the document', () => {
    expect(RULES.map((r) => [r.name, r.pattern !== undefined || r.notPattern !== undefined])).toEqual(RULES.map((r) => [r.name, true]));
  });

  it('use no escape RE2 refuses or Java reads otherwise', () => {
    const escapes = RULES.flatMap((r) => [r.pattern, r.notPattern]).filter((p): p is string => p !== undefined).flatMap((p) => [...p.matchAll(/\\[usSv]/g)].map((m) => `${p.slice(0, 20)}...: ${m[0]}`));
    expect(escapes).toEqual([]);
  });

  it('say of every text what the hub says, read by ajv and by Python alike', () => {
    const corpus = texts();
    const js = (r: Rule, t: string): boolean => (r.pattern === undefined || new RegExp(r.pattern, 'u').test(t)) && (r.notPattern === undefined || !new RegExp(r.notPattern, 'u').test(t));
    const script = [
      'import json, re, sys',
      'data = json.load(sys.stdin)',
      'out = []',
      'for rule in data["rules"]:',
      '    p = re.compile(rule["pattern"]) if rule.get("pattern") is not None else None',
      '    n = re.compile(rule["notPattern"]) if rule.get("notPattern") is not None else None',
      '    out.append("".join("1" if (p is None or p.search(t)) and (n is None or not n.search(t)) else "0" for t in data["texts"]))',
      'json.dump(out, sys.stdout)',
    ].join('\n');
    const run = spawnSync(PYTHON, ['-c', script], { input: JSON.stringify({ rules: RULES.map(({ pattern, notPattern }) => ({ pattern, notPattern })), texts: corpus }), maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    const python = JSON.parse(run.stdout) as string[];
    const disagreements: string[] = [];
    RULES.forEach((rule, i) => {
      corpus.forEach((text, k) => {
        if ([...text].length > rule.maxLength) return; // refused by its length, which maxLength says
        const hub = rule.hub(text);
        const [byJs, byPython] = [js(rule, text), python[i]![k] === '1'];
        if (byJs !== hub || byPython !== hub) disagreements.push(`${rule.name} ${JSON.stringify(text).slice(0, 30)}: hub ${hub ? 'takes' : 'refuses'}, ajv ${byJs}, python ${byPython}`);
      });
    });
    expect(disagreements.slice(0, 20)).toEqual([]);
  });
});
