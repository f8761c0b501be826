import { DateTime, type DateTimeUnit } from 'luxon';

/**
 * A plain-text chart of systolic and diastolic pressure over time, for a terminal: no colour, so it reads the
 * same in a pipe, a log and under NO_COLOR; the two series differ by marker shape. Pure: the same points and
 * options always give the same text (the time zone of the date labels is an option, default the machine's).
 *
 *   mmHg
 *    150 ┤        ▲
 *    140 ┤ ▲              ▲
 *    ...
 *     80 ┤        ▼       ▼
 *     70 ┤ ▼
 *        └─┬───────┬───────┬──
 *        05-04   05-05   05-06
 *        ▲ systolic  ▼ diastolic
 */
export type ChartPoint = Readonly<{ at: number; systolic: number; diastolic: number }>;

export type ChartOptions = Readonly<{
  /** Total columns of every line, y-axis labels included (at least 30). */
  width: number;
  /** Most rows of the plot area (at least 3); fewer are used when fewer show every value at its row. */
  height: number;
  /** The interval drawn, epoch ms, [from, to); default: the span of the points. */
  from?: number;
  to?: number;
  /** IANA zone of the date labels; default the machine's local zone. */
  zone?: string;
  /** ASCII characters only (for terminals without Unicode). */
  ascii?: boolean;
}>;

type Glyphs = Readonly<{ systolic: string; diastolic: string; both: string; tick: string; axis: string; corner: string; rule: string; ruleTick: string }>;

export const UNICODE_GLYPHS: Glyphs = { systolic: '▲', diastolic: '▼', both: '◆', tick: '┤', axis: '│', corner: '└', rule: '─', ruleTick: '┬' };
export const ASCII_GLYPHS: Glyphs = { systolic: 'S', diastolic: 'D', both: '#', tick: '|', axis: '|', corner: '+', rule: '-', ruleTick: '+' };

/** When there is nothing to scale by: a typical span of adult pressures. */
const EMPTY_RANGE = { lo: 60, hi: 160 } as const;
const Y_STEPS = [1, 2, 5, 10, 15, 20, 25, 50, 100] as const;

type YScale = Readonly<{ bottom: number; step: number; rows: number }>;

/**
 * Rows of whole, "round" values: the smallest step of Y_STEPS whose rows cover all values within `maxRows`
 * (finer is more exact), then one spare row above and below when there is room, so no marker sits on the rule.
 */
export const yScale = (values: readonly number[], maxRows: number): YScale => {
  const lo = values.length > 0 ? Math.min(...values) : EMPTY_RANGE.lo;
  const hi = values.length > 0 ? Math.max(...values) : EMPTY_RANGE.hi;
  const fit = (step: number) => {
    const bottom = Math.floor(lo / step) * step;
    return { bottom, step, rows: Math.max(1, Math.ceil((hi - bottom) / step) + 1) };
  };
  // Beyond the round steps (values far apart, very few rows): keep doubling the largest until it fits.
  const steps = [...Y_STEPS, ...Array.from({ length: 40 }, (_, i) => Y_STEPS[Y_STEPS.length - 1]! * 2 ** (i + 1))];
  const scale = steps.map(fit).find((c) => c.rows <= Math.max(2, maxRows)) ?? fit(steps[steps.length - 1]!);
  const margin = scale.rows + 2 <= maxRows && scale.bottom - scale.step >= 0 ? 1 : 0;
  return { bottom: scale.bottom - margin * scale.step, step: scale.step, rows: scale.rows + 2 * margin };
};

/** Row index from the top for a value. */
const rowOf = (scale: YScale, value: number): number => {
  const fromBottom = Math.round((value - scale.bottom) / scale.step);
  return scale.rows - 1 - Math.min(scale.rows - 1, Math.max(0, fromBottom));
};

type TickSpec = Readonly<{ unit: DateTimeUnit; n: number; format: string }>;

/** Candidate spacings of x ticks, finest first; the finest whose labels do not touch is used. */
const TICKS: readonly TickSpec[] = [
  { unit: 'hour', n: 1, format: 'HH:mm' },
  { unit: 'hour', n: 3, format: 'HH:mm' },
  { unit: 'hour', n: 6, format: 'HH:mm' },
  { unit: 'hour', n: 12, format: 'HH:mm' },
  { unit: 'day', n: 1, format: 'LL-dd' },
  { unit: 'day', n: 2, format: 'LL-dd' },
  { unit: 'day', n: 7, format: 'LL-dd' },
  { unit: 'day', n: 14, format: 'LL-dd' },
  { unit: 'month', n: 1, format: 'yyyy-LL' },
  { unit: 'month', n: 3, format: 'yyyy-LL' },
  { unit: 'month', n: 6, format: 'yyyy-LL' },
  { unit: 'year', n: 1, format: 'yyyy' },
];

const APPROX_MS: Record<string, number> = { hour: 3_600_000, day: 86_400_000, month: 30 * 86_400_000, year: 365 * 86_400_000 };

type Tick = Readonly<{ col: number; label: string }>;

const xTicks = (from: number, to: number, cols: number, zone: string): Tick[] => {
  const span = to - from;
  if (span <= 0 || cols < 2) return [];
  const colsPerMs = (cols - 1) / span;
  const spec = TICKS.find((t) => t.n * APPROX_MS[t.unit]! * colsPerMs >= t.format.length + 2);
  if (!spec) return [];
  const ticks: Tick[] = [];
  let t = DateTime.fromMillis(from, { zone }).startOf(spec.unit);
  for (let guard = 0; guard < 1000 && t.toMillis() < to; guard++, t = t.plus({ [spec.unit]: 1 })) {
    if (t.toMillis() < from) continue;
    const index = spec.unit === 'hour' ? t.hour : spec.unit === 'month' ? t.month - 1 : spec.unit === 'day' ? Math.round(t.diff(DateTime.fromMillis(from, { zone }).startOf('day'), 'days').days) : 0;
    if (index % spec.n !== 0) continue;
    // At midnight an hour tick shows the date instead, so a short interval still says which day it is.
    const label = spec.unit === 'hour' && t.hour === 0 ? t.toFormat('LL-dd') : t.toFormat(spec.format);
    ticks.push({ col: Math.round((t.toMillis() - from) * colsPerMs), label });
  }
  return ticks;
};

export const renderChart = (points: readonly ChartPoint[], options: ChartOptions): string => {
  const g = options.ascii ? ASCII_GLYPHS : UNICODE_GLYPHS;
  const zone = options.zone ?? 'local';
  const width = Math.max(30, Math.floor(options.width));
  const scale = yScale(points.flatMap((p) => [p.systolic, p.diastolic]), Math.max(3, Math.floor(options.height)));
  const rows = scale.rows;

  const labels = Array.from({ length: rows }, (_, r) => String(scale.bottom + (rows - 1 - r) * scale.step));
  const labelWidth = Math.max(4, ...labels.map((l) => l.length));
  const indent = labelWidth + 2; // label, space, axis character
  const cols = width - indent;

  const times = points.map((p) => p.at);
  const from = options.from ?? (times.length > 0 ? Math.min(...times) : 0);
  const to = options.to ?? (times.length > 0 ? Math.max(...times) : 0);
  const colOf = (at: number): number => (to > from ? Math.min(cols - 1, Math.max(0, Math.round(((at - from) / (to - from)) * (cols - 1)))) : Math.floor(cols / 2));

  const grid: string[][] = Array.from({ length: rows }, () => Array<string>(cols).fill(' '));
  const put = (row: number, col: number, mark: string): void => {
    const line = grid[row]!;
    const here = line[col];
    line[col] = here === ' ' || here === mark ? mark : g.both;
  };
  for (const p of points) {
    const col = colOf(p.at);
    put(rowOf(scale, p.systolic), col, g.systolic);
    put(rowOf(scale, p.diastolic), col, g.diastolic);
  }

  const ticks = to > from ? xTicks(from, to, cols, zone) : points.length > 0 ? [{ col: colOf(points[0]!.at), label: DateTime.fromMillis(points[0]!.at, { zone }).toFormat('LL-dd HH:mm') }] : [];

  const lines: string[] = ['mmHg'.padStart(labelWidth)];
  grid.forEach((cells, r) => lines.push(`${labels[r]!.padStart(labelWidth)} ${g.tick}${cells.join('')}`));

  const rule = Array<string>(cols).fill(g.rule);
  for (const t of ticks) rule[t.col] = g.ruleTick;
  lines.push(`${' '.repeat(labelWidth + 1)}${g.corner}${rule.join('')}`);

  const under = Array<string>(width).fill(' ');
  let free = 0; // first column a label may use
  for (const t of ticks) {
    const start = Math.min(width - t.label.length, Math.max(0, indent + t.col - Math.floor(t.label.length / 2)));
    if (start < free) continue; // it would touch the previous label
    under.splice(start, t.label.length, ...t.label);
    free = start + t.label.length + 1;
  }
  lines.push(under.join(''));

  // The third mark, where both series fall in one cell, is explained when the chart has one.
  const both = grid.some((cells) => cells.includes(g.both)) ? `  ${g.both} both in one place` : '';
  lines.push(`${' '.repeat(indent)}${g.systolic} systolic  ${g.diastolic} diastolic${both}${points.length === 0 ? '   (no readings)' : ''}`);
  return lines.map((l) => l.trimEnd()).join('\n');
};
