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
  return specs;
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
      const allowed = ALLOWED_PACKAGES[from];
      if (allowed && !allowed.includes(pkg)) found.push(`${where}: ${from} imports package ${pkg}`);
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
});
