import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/**
 * Imports point inward only: bootstrap -> adapters -> application -> domain (and sdk -> adapters/application/
 * domain). Checked on every `npm test`, so the rule holds without anyone remembering it.
 */
const SRC = resolve(__dirname, '..', '..', 'src');

type Layer = 'domain' | 'application' | 'adapters' | 'sdk' | 'bootstrap' | 'root';

const files = (dir: string): string[] =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });

const layerOf = (file: string): Layer => {
  const top = relative(SRC, file).split(/[\\/]/)[0]!;
  return (['domain', 'application', 'adapters', 'sdk', 'bootstrap'].includes(top) ? top : 'root') as Layer;
};

const importsOf = (source: string): string[] => {
  const specs: string[] = [];
  const patterns = [/\bfrom\s+['"]([^'"]+)['"]/g, /\bimport\s+['"]([^'"]+)['"]/g, /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g];
  for (const p of patterns) for (const m of source.matchAll(p)) specs.push(m[1]!);
  // A template literal (import(`../x`), require(`../x`)): its text up to the first ${ is where it points, which
  // names the layer (import(`../../adapters/${name}`) is still an import of adapters).
  for (const m of source.matchAll(/\b(?:import|require)\(\s*`([^`$]*)(?:\$\{[^`]*)?`/g)) if (m[1]) specs.push(m[1]);
  return specs;
};

/** What is wrong with importing package `pkg` from `from`, or null; it says which form is allowed where only that is. */
const packageProblem = (from: Layer, pkg: string): string | null => {
  const allowed = ALLOWED_PACKAGES[from];
  if (!allowed || allowed.includes(pkg)) return null;
  const prefixed = `node:${pkg}`;
  return allowed.includes(prefixed) ? `${from} imports package ${pkg}: import '${prefixed}' instead (only the node: form is allowed in ${from})` : `${from} imports package ${pkg}`;
};

/** Which layers each layer may import, and which packages. */
const ALLOWED_LAYERS: Record<Layer, readonly Layer[]> = {
  domain: ['domain'],
  application: ['domain', 'application'],
  adapters: ['domain', 'application', 'adapters'],
  sdk: ['domain', 'application', 'adapters', 'sdk'],
  bootstrap: ['domain', 'application', 'adapters', 'sdk', 'bootstrap'],
  root: ['domain', 'application', 'adapters', 'sdk', 'bootstrap', 'root'],
};
/** The pure core may use pure libraries only; application may also hash (node:crypto is computation, not I/O). */
const ALLOWED_PACKAGES: Partial<Record<Layer, readonly string[]>> = {
  domain: ['luxon', 'fast-xml-parser'],
  application: ['luxon', 'fast-xml-parser', 'node:crypto'],
};
const CONTAINER_PACKAGES = ['inversify', 'reflect-metadata'];

const violations = (): string[] => {
  const found: string[] = [];
  for (const file of files(SRC)) {
    const from = layerOf(file);
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      const where = relative(SRC, file);
      if (spec.startsWith('.')) {
        const to = layerOf(resolve(dirname(file), spec));
        if (!ALLOWED_LAYERS[from].includes(to)) found.push(`${where}: ${from} imports ${to} (${spec})`);
        continue;
      }
      const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
      const problem = packageProblem(from, pkg);
      if (problem) found.push(`${where}: ${problem}`);
      if (CONTAINER_PACKAGES.includes(pkg) && !['bootstrap', 'adapters'].includes(from)) found.push(`${where}: ${from} imports ${pkg}`);
    }
  }
  return found;
};

describe('architecture: imports point inward only', () => {
  it('finds the source files it checks', () => {
    const layers = new Set(files(SRC).map(layerOf));
    expect([...layers]).toEqual(expect.arrayContaining(['domain', 'application', 'adapters', 'bootstrap']));
  });

  it('has no import that points outward, and no container or I/O package in the core', () => {
    expect(violations()).toEqual([]);
  });

  it('would catch an outward import (the checker itself works)', () => {
    expect(importsOf("import { x } from '../adapters/http/server';\nconst y = require('fs');")).toEqual(['../adapters/http/server', 'fs']);
    expect(ALLOWED_LAYERS.domain.includes('adapters')).toBe(false);
    expect(ALLOWED_LAYERS.application.includes('adapters')).toBe(false);
  });

  it('catches a dynamic import written as a template literal, with or without ${...} in it', () => {
    const source = 'const p = await import(`../../adapters/http/problem`);\nconst q = await import(`../../adapters/http/${name}`);\nconst r = require(`../../bootstrap/main`);';
    expect(importsOf(source)).toEqual(['../../adapters/http/problem', '../../adapters/http/', '../../bootstrap/main']);
    const domainFile = join(SRC, 'domain', 'monitoring', 'x.ts');
    expect(importsOf(source).map((spec) => layerOf(resolve(dirname(domainFile), spec)))).toEqual(['adapters', 'adapters', 'bootstrap']);
  });

  it('says to use node:crypto where only that form is allowed, not just that crypto is imported', () => {
    expect(packageProblem('application', 'crypto')).toBe("application imports package crypto: import 'node:crypto' instead (only the node: form is allowed in application)");
    expect(packageProblem('application', 'node:crypto')).toBeNull();
    expect(packageProblem('domain', 'crypto')).toBe('domain imports package crypto');
    expect(packageProblem('adapters', 'pg')).toBeNull();
  });
});

/**
 * The HTTP adapter is one edge among others: no other adapter imports it. The AMQP side once took its error statuses
 * and request-id rule from it (uplink-audit.ts); both now live where both edges read them (adapters/errors,
 * application/audit). bootstrap, which assembles the edges, may.
 */
describe('architecture: no other adapter imports the HTTP adapter', () => {
  const HTTP = join(SRC, 'adapters', 'http');
  const intoHttp = (file: string, spec: string): boolean => spec.startsWith('.') && resolve(dirname(file), spec).startsWith(HTTP + '/');

  it('has none', () => {
    const found = files(join(SRC, 'adapters'))
      .filter((file) => !file.startsWith(HTTP + '/'))
      .flatMap((file) => importsOf(readFileSync(file, 'utf8')).filter((spec) => intoHttp(file, spec)).map((spec) => `${relative(SRC, file)}: ${spec}`));
    expect(found).toEqual([]);
  });

  it('would catch one', () => {
    expect(intoHttp(join(SRC, 'adapters', 'messaging', 'uplink-audit.ts'), '../http/problem')).toBe(true);
    expect(intoHttp(join(SRC, 'adapters', 'messaging', 'uplink-audit.ts'), '../errors/error-codes')).toBe(false);
  });
});
