import { MIN_NODE_VERSION, nodeVersionProblem } from '../../src/adapters/system/node-version';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

// On Node 20.10-20.18 the hub and the CLI died at load with ERR_REQUIRE_ESM (jose is ESM only) while package.json said
// >=20.10: a new contributor's report. The entry points now say so in one line, and engines says what they need.
describe('the Node.js version the hub and the CLI need', () => {
  it('refuses the Node 20 releases before require() of ES modules, and takes 20.19 and later', () => {
    for (const v of ['20.10.0', '20.18.3', '18.20.4', '16.0.0']) expect(nodeVersionProblem(v)).toMatch(new RegExp(`^Node.js ${v.replace(/\./g, '\\.')} is too old: telemed-rts needs ${MIN_NODE_VERSION} or later`));
    for (const v of ['20.19.0', '20.20.2', '22.0.0', '24.11.1']) expect(nodeVersionProblem(v)).toBeNull();
  });

  it('is what package.json engines and the README say', () => {
    const root = join(__dirname, '..', '..');
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
    expect(pkg.engines.node).toBe(`>=${MIN_NODE_VERSION.replace(/\.0$/, '')}`);
    expect(readFileSync(join(root, 'README.md'), 'utf8')).toContain(`Node.js ${MIN_NODE_VERSION.replace(/\.0$/, '')}+`);
  });
});
