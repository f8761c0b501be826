import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { openApiDocument } from '../../src/adapters/http/openapi';
import { DevLoginBody } from '../../src/adapters/http/security-schemas';
import { DiscardBody } from '../../src/adapters/http/dead-letter-routes';
import { ExpertsQuery } from '../../src/adapters/http/directory-routes';
import { idempotencyKey } from '../../src/adapters/http/schemas';
import { REFUSES_CPR_NUMBER } from '../../src/adapters/validation/no-cpr-text';
import { holdsCprNumber } from '../../src/domain/monitoring/cpr-like';
import { ErasuresQuery } from '../../src/adapters/http/security-schemas';

/**
 * The text patterns of /openapi.json (a one-line `sub`, a term that is not only white space, a trimmed one-line
 * reason) read alike by ECMA-262 (ajv) and by Python's `re` (jsonschema, what the city systems' client is written
 * in), and both say what the hub's own schema says of the text: a client validating against the document neither
 * holds back a text the hub takes nor sends one it refuses. Every BMP character, alone, between letters and between
 * spaces, and texts made of spaces, line breaks and controls around a letter. Also none of the escapes RE2 (Go)
 * refuses or Java reads otherwise (`\u`, `\s`, `\S`, `\v`). The anchored patterns too (an idempotency key, a store
 * position): Python's `$` also matches before a final line break and its `\d` takes any script's digits, so a Python
 * client took `2026-11-30-0001\n` or `١٢٣`, which the hub refuses.
 */
const PYTHON = '/usr/bin/python3';
const available = existsSync(PYTHON);
if (!available) console.warn('text-patterns-python: skipped: /usr/bin/python3 is needed');
const maybe = available ? describe : describe.skip;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document, read as JSON
const doc = openApiDocument() as any;
const body = (path: string, method: string) => doc.paths[path][method].requestBody.content['application/json'].schema;
/**
 * A field's text rule as the document says it: its `pattern` must be found, and none of the patterns of its `not`
 * (`not: {pattern}`, or `not: {anyOf: [{pattern}, ...]}`).
 */
type Rule = Readonly<{ name: string; pattern?: string; notPatterns: readonly string[]; maxLength: number; refusesCpr: boolean; hub: (text: string) => boolean }>;
type TextSchema = { pattern?: string; not?: { pattern?: string; anyOf?: { pattern?: string }[] }; maxLength?: number; [REFUSES_CPR_NUMBER]?: boolean };
const ruleOf = (name: string, schema: TextSchema, hub: (text: string) => boolean): Rule => ({
  name,
  maxLength: schema.maxLength ?? Infinity,
  // The document's extension keyword (a client that honours it refuses a text holding a CPR number), not a pattern.
  refusesCpr: schema[REFUSES_CPR_NUMBER] === true,
  ...(schema.pattern === undefined ? {} : { pattern: schema.pattern }),
  notPatterns: [schema.not?.pattern, ...(schema.not?.anyOf ?? []).map((s) => s.pattern)].filter((p): p is string => p !== undefined),
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
  ruleOf('observationId', body('/observations', 'post').properties.observationId, (key) => idempotencyKey.safeParse(key).success),
  ruleOf(
    'erasures after',
    (doc.paths['/erasures'].get.parameters as { name: string; schema: object }[]).find((p) => p.name === 'after')!.schema,
    (after) => ErasuresQuery.safeParse({ after }).success,
  ),
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
  // Keys and positions: with a final line break (Python's `$` matches before one), in other scripts' digits (Python's
  // `\d` takes them), CPR numbers in both.
  for (const t of ['2026-11-30-0001', 'meter-7:0042', '2512481234', '251248-1234', '25.12.48-1234', '123', '1'.repeat(19), '\u0661\u0662\u0663', '\uff11\uff12\uff13', '\u0968\u096b\u0967\u0968\u096a\u096e\u0967\u0968\u0969\u096a']) {
    out.push(t, `${t}\n`, `${t}\r\n`, `${t}\r`, `${t}\u2028`, `${t}\u0085`, `\n${t}`);
  }
  out.push('😀', ' 😀 ', 'a'.repeat(100), `${' '.repeat(90)}\u0001`, `a${' '.repeat(90)}\u0001`, `${' '.repeat(450)}\u0001`, `a${' '.repeat(450)}b${' '.repeat(40)}`, `${'\n'.repeat(50)}a${'\t'.repeat(50)}`);
  return out;
};

maybe('the text patterns of the OpenAPI document, in ECMA-262 and in Python', () => {
  it('each rule has its pattern in the document', () => {
    expect(RULES.map((r) => [r.name, r.pattern !== undefined || r.notPatterns.length > 0])).toEqual(RULES.map((r) => [r.name, true]));
  });

  it('use no escape RE2 refuses or Java or Python read otherwise (\\d, \\w: any script in Python)', () => {
    const escapes = RULES.flatMap((r) => [r.pattern, ...r.notPatterns]).filter((p): p is string => p !== undefined).flatMap((p) => [...p.matchAll(/\\[usSvdDwW]/g)].map((m) => `${p.slice(0, 20)}...: ${m[0]}`));
    expect(escapes).toEqual([]);
  });

  it('say of every text what the hub says, read by ajv and by Python alike', () => {
    const corpus = texts();
    const js = (r: Rule, t: string): boolean => (r.pattern === undefined || new RegExp(r.pattern, 'u').test(t)) && r.notPatterns.every((n) => !new RegExp(n, 'u').test(t));
    const script = [
      'import json, re, sys',
      'data = json.load(sys.stdin)',
      'out = []',
      'for rule in data["rules"]:',
      '    p = re.compile(rule["pattern"]) if rule.get("pattern") is not None else None',
      '    ns = [re.compile(n) for n in rule["notPatterns"]]',
      '    out.append("".join("1" if (p is None or p.search(t)) and not any(n.search(t) for n in ns) else "0" for t in data["texts"]))',
      'json.dump(out, sys.stdout)',
    ].join('\n');
    const run = spawnSync(PYTHON, ['-c', script], { input: JSON.stringify({ rules: RULES.map(({ pattern, notPatterns }) => ({ pattern, notPatterns })), texts: corpus }), maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' });
    expect(run.stderr).toBe('');
    const python = JSON.parse(run.stdout) as string[];
    const disagreements: string[] = [];
    RULES.forEach((rule, i) => {
      corpus.forEach((text, k) => {
        if ([...text].length > rule.maxLength) return; // refused by its length, which maxLength says
        const hub = rule.hub(text);
        const keyword = !(rule.refusesCpr && holdsCprNumber(text));
        const [byJs, byPython] = [js(rule, text) && keyword, python[i]![k] === '1' && keyword];
        if (byJs !== hub || byPython !== hub) disagreements.push(`${rule.name} ${JSON.stringify(text).slice(0, 30)}: hub ${hub ? 'takes' : 'refuses'}, ajv ${byJs}, python ${byPython}`);
      });
    });
    expect(disagreements.slice(0, 20)).toEqual([]);
  });
});
