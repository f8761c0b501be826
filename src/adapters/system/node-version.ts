/**
 * The oldest Node.js the hub and the CLI run on: 20.19, the first Node 20 whose `require()` loads an ES module
 * (jose ships as ESM only; adapters/crypto/jose-lib.ts). On 20.10-20.18 both died at load with ERR_REQUIRE_ESM and a
 * stack of module paths, while package.json's engines said >=20.10.
 */
export const MIN_NODE_VERSION = '20.19.0';

/** Why `version` (process.versions.node's form, e.g. "20.18.3") is too old, or null when it will do. */
export const nodeVersionProblem = (version: string): string | null => {
  const [major, minor] = version.split('.').map((part) => Number.parseInt(part, 10));
  const [needMajor, needMinor] = MIN_NODE_VERSION.split('.').map(Number) as [number, number];
  if (major === undefined || minor === undefined || Number.isNaN(major) || Number.isNaN(minor)) return null;
  if (major > needMajor || (major === needMajor && minor >= needMinor)) return null;
  return `Node.js ${version} is too old: telemed-rts needs ${MIN_NODE_VERSION} or later (it loads an ES module with require())`;
};
