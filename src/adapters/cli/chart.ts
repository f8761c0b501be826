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
 *        4 May   5 May   6 May
 *        ▲ systolic  ▼ diastolic
 *
 * Dates are "4 May" (English month names of our own, not the machine's locale): "05-04" read as 5 April in Europe.
 * Readings of one series that fall in one cell share a mark; a note under the legend says how many, so a chart
 * with fewer marks than readings is not taken for a complete one.
 */
export type ChartPoint = Readonly<{ at: number; systolic: number; diastolic: number }>;

/** The narrowest chart drawn: a narrower width is drawn this wide (a caller leaves the chart out instead). */
export const CHART_MIN_WIDTH = 30;

export type ChartOptions = Readonly<{
  /** Total columns of every line, y-axis labels included (at least CHART_MIN_WIDTH). */
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

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

/** "1 Dec": no order of day and month to guess (12-01 was read as 12 January in Europe). */
export const dayLabel = (t: DateTime): string => `${t.day} ${MONTHS[t.month - 1]!}`;
const monthLabel = (t: DateTime): string => `${MONTHS[t.month - 1]!} ${t.year}`;
// At midnight an hour tick shows the date instead, so a short interval still says which day it is.
const hourLabel = (t: DateTime): string => (t.hour === 0 ? dayLabel(t) : t.toFormat('HH:mm'));

/** `width`: the longest label the spec makes ("26 Nov"). */
type TickSpec = Readonly<{ unit: DateTimeUnit; n: number; label: (t: DateTime) => string; width: number }>;

/** Candidate spacings of x ticks, finest first; the finest whose labels do not touch is used. */
const TICKS: readonly TickSpec[] = [
  { unit: 'hour', n: 1, label: hourLabel, width: 6 },
  { unit: 'hour', n: 3, label: hourLabel, width: 6 },
  { unit: 'hour', n: 6, label: hourLabel, width: 6 },
  { unit: 'hour', n: 12, label: hourLabel, width: 6 },
  { unit: 'day', n: 1, label: dayLabel, width: 6 },
  { unit: 'day', n: 2, label: dayLabel, width: 6 },
  { unit: 'day', n: 7, label: dayLabel, width: 6 },
  { unit: 'day', n: 14, label: dayLabel, width: 6 },
  { unit: 'month', n: 1, label: monthLabel, width: 8 },
  { unit: 'month', n: 3, label: monthLabel, width: 8 },
  { unit: 'month', n: 6, label: monthLabel, width: 8 },
  { unit: 'year', n: 1, label: (t) => String(t.year), width: 4 },
];

const APPROX_MS: Record<string, number> = { hour: 3_600_000, day: 86_400_000, month: 30 * 86_400_000, year: 365 * 86_400_000 };

type Tick = Readonly<{ col: number; label: string }>;

const xTicks = (from: number, to: number, cols: number, zone: string): Tick[] => {
  const span = to - from;
  if (span <= 0 || cols < 2) return [];
  const colsPerMs = (cols - 1) / span;
  const spec = TICKS.find((t) => t.n * APPROX_MS[t.unit]! * colsPerMs >= t.width + 2);
  if (!spec) return [];
  const ticks: Tick[] = [];
  let t = DateTime.fromMillis(from, { zone }).startOf(spec.unit);
  for (let guard = 0; guard < 1000 && t.toMillis() < to; guard++, t = t.plus({ [spec.unit]: 1 })) {
    if (t.toMillis() < from) continue;
    const index = spec.unit === 'hour' ? t.hour : spec.unit === 'month' ? t.month - 1 : spec.unit === 'day' ? Math.round(t.diff(DateTime.fromMillis(from, { zone }).startOf('day'), 'days').days) : 0;
    if (index % spec.n !== 0) continue;
    ticks.push({ col: Math.round((t.toMillis() - from) * colsPerMs), label: spec.label(t) });
  }
  return ticks;
};

export const renderChart = (points: readonly ChartPoint[], options: ChartOptions): string => {
  const g = options.ascii ? ASCII_GLYPHS : UNICODE_GLYPHS;
  const zone = options.zone ?? 'local';
  const width = Math.max(CHART_MIN_WIDTH, Math.floor(options.width));
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
  // Readings per cell and series: where one series' marks coincide, fewer marks than readings are drawn.
  const perCell = { systolic: new Map<string, number>(), diastolic: new Map<string, number>() };
  const count = (series: keyof typeof perCell, row: number, col: number): void => {
    const key = `${row},${col}`;
    perCell[series].set(key, (perCell[series].get(key) ?? 0) + 1);
  };
  const put = (row: number, col: number, mark: string): void => {
    const line = grid[row]!;
    const here = line[col];
    line[col] = here === ' ' || here === mark ? mark : g.both;
  };
  for (const p of points) {
    const col = colOf(p.at);
    put(rowOf(scale, p.systolic), col, g.systolic);
    put(rowOf(scale, p.diastolic), col, g.diastolic);
    count('systolic', rowOf(scale, p.systolic), col);
    count('diastolic', rowOf(scale, p.diastolic), col);
  }

  const ticks = to > from ? xTicks(from, to, cols, zone) : points.length > 0 ? [{ col: colOf(points[0]!.at), label: ((t) => `${dayLabel(t)} ${t.toFormat('HH:mm')}`)(DateTime.fromMillis(points[0]!.at, { zone })) }] : [];

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

  // The third mark, where both series fall in one cell, is explained when the chart has one. The legend and the
  // notes are wrapped to the width, each line starting under the plot.
  const legend = [`${g.systolic} systolic`, `${g.diastolic} diastolic`];
  if (grid.some((cells) => cells.includes(g.both))) legend.push(`${g.both} both in one place`);
  if (points.length === 0) legend.push('(no readings)');
  lines.push(...wrapAt(legend, '  ', indent, width));
  const shared = sharedMarksNote(perCell.systolic, perCell.diastolic);
  if (shared !== null) lines.push(...wrapAt(shared.split(' '), ' ', indent, width));
  return lines.map((l) => l.trimEnd()).join('\n');
};


/** Words joined by `gap`, in lines of at most `width` columns that start `indent` columns in (a longer word alone). */
const wrapAt = (words: readonly string[], gap: string, indent: number, width: number): string[] => {
  const lines: string[] = [];
  let line = '';
  for (const word of words) {
    if (line !== '' && indent + line.length + gap.length + word.length > width) {
      lines.push(line);
      line = '';
    }
    line = line === '' ? word : `${line}${gap}${word}`;
  }
  if (line !== '') lines.push(line);
  const pad = ' '.repeat(Math.max(0, Math.min(indent, width - Math.max(...lines.map((l) => l.length)))));
  return lines.map((l) => `${pad}${l}`);
};

/** "3 readings share a mark": readings of one series drawn in a cell another reading of it has too. */
const sharedMarksNote = (systolic: ReadonlyMap<string, number>, diastolic: ReadonlyMap<string, number>): string | null => {
  const sharing = (cells: ReadonlyMap<string, number>) => {
    let readings = 0;
    let marks = 0;
    for (const n of cells.values()) if (n > 1) (readings += n), marks++;
    return { readings, marks };
  };
  const s = sharing(systolic);
  const d = sharing(diastolic);
  if (s.readings === 0 && d.readings === 0) return null;
  const marks = (m: number, series: string) => (m === 1 ? `a${series} mark` : `${m}${series} marks`);
  const parts =
    s.readings === d.readings && s.marks === d.marks
      ? [`${s.readings} readings share ${marks(s.marks, '')}`]
      : [...(s.readings > 0 ? [`${s.readings} readings share ${marks(s.marks, ' systolic')}`] : []), ...(d.readings > 0 ? [`${d.readings} readings share ${marks(d.marks, ' diastolic')}`] : [])];
  return `${parts.join(', ')} (close in time and value; the table lists each).`;
};
