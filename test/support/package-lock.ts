// Reading package-lock.json (lockfile version 3) for the supply-chain tests: which entries production installs, and
// whether a licence expression is satisfied by an allow-list.

export interface LockEntry {
  version?: string;
  resolved?: string;
  integrity?: string;
  link?: boolean;
  dev?: boolean;
  optional?: boolean;
  license?: unknown;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

export interface PackageLock {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
}

/** The package's name from its lock path: `node_modules/a/node_modules/@s/b` is `@s/b`. */
export const nameOf = (path: string): string => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);

/**
 * The lock paths production installs: the root's dependencies and optionalDependencies, then theirs (peers too),
 * each resolved as Node does, from the nearest node_modules outwards. Walked from the root rather than taken from
 * the entries' `dev` flags, which are npm's own conclusion. A dependency that cannot be resolved is returned in
 * `missing` (an optional one absent from the lock is not: npm skipped it for this platform).
 */
export const productionTree = (lock: PackageLock): { paths: string[]; missing: string[] } => {
  const found = new Set<string>();
  const missing: string[] = [];
  const resolve = (from: string, name: string): string | undefined => {
    let base = from;
    for (;;) {
      const candidate = `${base === '' ? '' : `${base}/`}node_modules/${name}`;
      if (lock.packages[candidate]) return candidate;
      if (base === '') return undefined;
      const cut = base.lastIndexOf('/node_modules/');
      base = cut < 0 ? '' : base.slice(0, cut);
    }
  };
  const visit = (path: string, entry: LockEntry): void => {
    const wanted: [string, boolean][] = [
      ...Object.keys(entry.dependencies ?? {}).map((n): [string, boolean] => [n, false]),
      ...Object.keys(entry.optionalDependencies ?? {}).map((n): [string, boolean] => [n, true]),
      ...Object.keys(entry.peerDependencies ?? {}).map((n): [string, boolean] => [n, entry.peerDependenciesMeta?.[n]?.optional === true]),
    ];
    for (const [name, optional] of wanted) {
      const target = resolve(path, name);
      if (target === undefined) {
        if (!optional) missing.push(`${path || '(root)'} -> ${name}`);
        continue;
      }
      if (found.has(target)) continue;
      found.add(target);
      visit(target, lock.packages[target]!);
    }
  };
  const root = lock.packages[''];
  if (!root) throw new Error('package-lock.json has no root entry');
  visit('', root);
  return { paths: [...found].sort(), missing };
};

/**
 * Whether an SPDX licence expression is allowed: an identifier when it is in the list, `A OR B` when either side is,
 * `A AND B` when both are. `WITH` exceptions, `+`, LicenseRef-, and anything unparsed are not allowed: a person reads
 * those and adds the package's exact expression to the exceptions if it is acceptable.
 */
export const licenceAllowed = (expression: string, allowed: ReadonlySet<string>): boolean => {
  const tokens = expression.match(/\(|\)|[^\s()]+/g) ?? [];
  let at = 0;
  const fail = (): never => {
    throw new Error('unparsed');
  };
  const primary = (): boolean => {
    const token = tokens[at++];
    if (token === undefined) return fail();
    if (token === '(') {
      const value = or();
      if (tokens[at++] !== ')') fail();
      return value;
    }
    if (token === ')' || token === 'AND' || token === 'OR' || token === 'WITH') return fail();
    return allowed.has(token);
  };
  const and = (): boolean => {
    let value = primary();
    while (tokens[at] === 'AND') {
      at += 1;
      value = primary() && value;
    }
    return value;
  };
  const or = (): boolean => {
    let value = and();
    while (tokens[at] === 'OR') {
      at += 1;
      value = and() || value;
    }
    return value;
  };
  try {
    const value = or();
    return at === tokens.length && value;
  } catch {
    return false;
  }
};
