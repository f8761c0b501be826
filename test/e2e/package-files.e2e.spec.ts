// What `npm pack` ships to a package user: the built program, its types, and the documents and client the README
// points them to. Without a "files" field it shipped the whole repository (tests, benchmarks, scripts, sources:
// 899 files).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';

const ROOT = join(__dirname, '..', '..');

it('the package holds dist (the rts bin, index and its types, the SDK), README, LICENSE, docs and the Python client, and nothing else', () => {
  const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as [{ files: { path: string }[] }];
  const files = packed[0].files.map((f) => f.path);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { main: string; types: string; bin: Record<string, string> };
  expect(files).toEqual(
    expect.arrayContaining([pkg.main, pkg.types, pkg.bin['rts'], 'dist/sdk/index.js', 'dist/sdk/index.d.ts', 'dist/bootstrap/token.js', 'README.md', 'LICENSE', 'package.json', 'docs/asyncapi.yaml', 'docs/messaging.md', 'clients/python/rts_client.py']),
  );
  expect(files.filter((f) => !/^(dist\/|docs\/|clients\/python\/[^/]+\.py$|README\.md$|LICENSE$|package\.json$)/.test(f))).toEqual([]);
});

it('ships no dangling source map: each packed .map carries its sources (inlineSources), which src/ is not packed for', () => {
  const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as [{ files: { path: string }[] }];
  const files = new Set(packed[0].files.map((f) => f.path));
  const maps = [...files].filter((f) => f.endsWith('.map'));
  expect(maps.length).toBeGreaterThan(0);
  const dangling = maps.flatMap((map) => {
    const { sources, sourcesContent } = JSON.parse(readFileSync(join(ROOT, map), 'utf8')) as { sources: string[]; sourcesContent?: (string | null)[] };
    return sources.filter((source, i) => typeof sourcesContent?.[i] !== 'string' && !files.has(normalize(join(dirname(map), source)))).map((source) => `${map} -> ${source}`);
  });
  expect(dangling).toEqual([]);
});
