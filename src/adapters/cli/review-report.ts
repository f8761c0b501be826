import { DateTime } from 'luxon';
import { CHART_MIN_WIDTH, renderChart } from './chart';
import type { ObservationList } from './hub-client';

/**
 * What `rts review` prints: the interval, a table of readings in local time, a summary and the chart.
 *
 * `width`: the columns every line fits in (the text is wrapped at spaces, the table takes a narrower form when its
 * widest does not fit). `chartWidth`: the chart's (default `width`); below CHART_MIN_WIDTH the chart is left out
 * and a line says so. `chart: false` leaves it out without a word (--no-chart); an interval with no readings has
 * no chart, only the words. `notLocal`: `zone` is not the user's own (the CLI fell back to UTC): the header says UTC,
 * not "local time".
 */
export type ReportOptions = Readonly<{ width: number; chartWidth?: number; chart?: boolean; height?: number; zone?: string; notLocal?: boolean; ascii?: boolean }>;

const LOCALE = 'en-GB';

const localTime = (iso: string, zone: string): DateTime => DateTime.fromISO(iso, { setZone: true }).setZone(zone).setLocale(LOCALE);

// As stored (the document keeps the shortest exact decimal): 70.25 is not shown as 70.3.
const mmHg = (value: number): string => `${value} mmHg`;

/** A line of words in lines of at most `width` columns, at spaces; a continuation is indented two. */
export const wrap = (text: string, width: number): string[] => {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    const candidate = line === '' ? word : `${line} ${word}`;
    if (line !== '' && candidate.length > width) {
      lines.push(line);
      line = `  ${word}`;
    } else line = candidate;
  }
  lines.push(line);
  return lines;
};

type Reading = ObservationList['observations'][number];

/**
 * The table in the widest of its forms that fits `width`: systolic and diastolic in columns of their own; then
 * both in one ("128/78 mmHg"); then without the weekday (the offset as +01:00); then under a shorter heading; then
 * each reading on two lines, its time and under it its values (a time with its offset across a change of summer
 * time and values with decimals made ~42 columns of the one-line forms). The last is used when none fits.
 */
const table = (readings: readonly Reading[], zone: string, oneOffset: boolean, width: number): string[] => {
  const withDay = oneOffset ? 'ccc yyyy-LL-dd HH:mm' : "ccc yyyy-LL-dd HH:mm 'UTC'ZZ";
  const dayless = oneOffset ? 'yyyy-LL-dd HH:mm' : 'yyyy-LL-dd HH:mmZZ';
  const forms = [
    { time: withDay, heading: null },
    { time: withDay, heading: 'Systolic/diastolic' },
    { time: dayless, heading: 'Systolic/diastolic' },
    { time: dayless, heading: 'Reading' },
    { time: dayless, heading: 'stacked' },
  ] as const;
  const render = (form: (typeof forms)[number]): string[] => {
    const when = readings.map((o) => localTime(o.measuredAt, zone).toFormat(form.time));
    const w0 = Math.max(8, ...when.map((t) => t.length));
    if (form.heading === null) {
      const s = readings.map((o) => mmHg(o.systolic.value));
      const d = readings.map((o) => mmHg(o.diastolic.value));
      const w1 = Math.max(8, ...s.map((v) => v.length));
      const w2 = Math.max(9, ...d.map((v) => v.length));
      return [`${'Measured'.padEnd(w0)}  ${'Systolic'.padStart(w1)}  ${'Diastolic'.padStart(w2)}`, ...when.map((t, i) => `${t.padEnd(w0)}  ${s[i]!.padStart(w1)}  ${d[i]!.padStart(w2)}`)];
    }
    const both = readings.map((o) => `${o.systolic.value}/${o.diastolic.value} mmHg`);
    if (form.heading === 'stacked') return ['Measured', '  Systolic/diastolic', ...when.flatMap((t, i) => [t, `  ${both[i]!}`])];
    // The heading starts the column; the values are aligned at their right among themselves.
    const w1 = Math.max(...both.map((v) => v.length));
    return [`${'Measured'.padEnd(w0)}  ${form.heading}`, ...when.map((t, i) => `${t.padEnd(w0)}  ${both[i]!.padStart(w1)}`)];
  };
  const rendered = forms.map(render);
  return rendered.find((lines) => lines.every((l) => l.length <= width)) ?? rendered[rendered.length - 1]!;
};

export const renderReview = (list: ObservationList, options: ReportOptions): string => {
  const zone = options.zone ?? 'local';
  const width = Math.max(1, Math.floor(options.width));
  const from = localTime(list.from, zone);
  const to = localTime(list.to, zone);
  const out: string[] = [];
  const say = (text: string): void => void out.push(...wrap(text, width));
  const sorted = [...list.observations].sort((a, b) => Date.parse(a.measuredAt) - Date.parse(b.measuredAt));
  // Across a change to or from summer time one offset does not say it: 02:30 comes twice in October. Then the
  // header names both, and every row its own.
  const offsets = new Set([from, to, ...sorted.map((o) => localTime(o.measuredAt, zone))].map((t) => t.toFormat('ZZ')));
  const oneOffset = offsets.size === 1;
  // `notLocal`: the CLI's fallback to UTC for a TZ it does not know (it warns); those times are no one's local time.
  const zoneWords = options.notLocal === true ? 'UTC' : `local time, ${oneOffset ? `UTC${from.toFormat('ZZ')}` : `UTC${from.toFormat('ZZ')} to UTC${to.toFormat('ZZ')}; each reading with its own`}`;
  say(`Blood pressure, ${from.toFormat('yyyy-LL-dd HH:mm')} to ${to.toFormat('yyyy-LL-dd HH:mm')} (${zoneWords})`);
  out.push('');

  if (sorted.length === 0) {
    // No chart: an empty one was 19 lines of axes for a screen reader to read through.
    say('No readings in this interval.');
    return `${out.join('\n')}\n`;
  }
  out.push(...table(sorted, zone, oneOffset, width));
  const avg = (pick: (o: Reading) => number): number => Math.round(sorted.reduce((s, o) => s + pick(o), 0) / sorted.length);
  const lowest = (pick: (o: Reading) => number): number => Math.min(...sorted.map(pick));
  const highest = (pick: (o: Reading) => number): number => Math.max(...sorted.map(pick));
  const sys = (o: Reading) => o.systolic.value;
  const dia = (o: Reading) => o.diastolic.value;
  // The summary the web page gives: count and average, the range of each series, the latest reading.
  out.push('');
  say(`${sorted.length} reading${sorted.length === 1 ? '' : 's'}, average ${avg(sys)}/${avg(dia)} mmHg`);
  if (sorted.length > 1) {
    say(`Systolic: lowest ${lowest(sys)}, highest ${highest(sys)} mmHg`);
    say(`Diastolic: lowest ${lowest(dia)}, highest ${highest(dia)} mmHg`);
  }
  const latest = sorted[sorted.length - 1]!;
  say(`Latest: ${latest.systolic.value}/${latest.diastolic.value} mmHg on ${localTime(latest.measuredAt, zone).toFormat(oneOffset ? 'yyyy-LL-dd HH:mm' : "yyyy-LL-dd HH:mm 'UTC'ZZ")}`);

  if (options.chart === false) return `${out.join('\n')}\n`;
  out.push('');
  const chartWidth = Math.floor(options.chartWidth ?? width);
  if (chartWidth < CHART_MIN_WIDTH) {
    say(`The chart is left out: it needs ${CHART_MIN_WIDTH} columns, and ${chartWidth} are given (COLUMNS or the terminal's width).`);
    return `${out.join('\n')}\n`;
  }
  out.push(
    renderChart(
      sorted.map((o) => ({ at: Date.parse(o.measuredAt), systolic: o.systolic.value, diastolic: o.diastolic.value })),
      { width: chartWidth, height: options.height ?? 16, from: Date.parse(list.from), to: Date.parse(list.to), zone, ...(options.ascii ? { ascii: true } : {}) },
    ),
  );
  return `${out.join('\n')}\n`;
};
