/** Edit distance (insertions, deletions, substitutions), for names only: settings, commands, options. */
export const editDistance = (a: string, b: string): number => {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next.push(Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    row = next;
  }
  return row[b.length]!;
};

/** The first of `names` within `within` edits of `name` (a typo of it), if any: for a "did you mean". */
export const nearName = (name: string, names: readonly string[], within = 2): string | undefined => names.find((n) => n !== name && editDistance(name, n) <= within);
