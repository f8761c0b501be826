import { DateTime } from 'luxon';
import { renderChart } from './chart';
import type { ObservationList } from './hub-client';

/** What `rts review` prints: the interval, a table of readings in local time, a summary and the chart. */
export type ReportOptions = Readonly<{ width: number; height?: number; zone?: string; ascii?: boolean }>;

const LOCALE = 'en-GB';

const localTime = (iso: string, zone: string): DateTime => DateTime.fromISO(iso, { setZone: true }).setZone(zone).setLocale(LOCALE);

// As stored (the document keeps the shortest exact decimal): 70.25 is not shown as 70.3.
const mmHg = (value: number): string => `${value} mmHg`;

export const renderReview = (list: ObservationList, options: ReportOptions): string => {
  const zone = options.zone ?? 'local';
  const from = localTime(list.from, zone);
  const to = localTime(list.to, zone);
  const out: string[] = [];
  const sorted = [...list.observations].sort((a, b) => Date.parse(a.measuredAt) - Date.parse(b.measuredAt));
  // Across a change to or from summer time one offset does not say it: 02:30 comes twice in October. Then the
  // header names both, and every row its own.
  const offsets = new Set([from, to, ...sorted.map((o) => localTime(o.measuredAt, zone))].map((t) => t.toFormat('ZZ')));
  const oneOffset = offsets.size === 1;
  out.push(
    `Blood pressure, ${from.toFormat('yyyy-LL-dd HH:mm')} to ${to.toFormat('yyyy-LL-dd HH:mm')} (local time, ${oneOffset ? `UTC${from.toFormat('ZZ')}` : `UTC${from.toFormat('ZZ')} to UTC${to.toFormat('ZZ')}; each reading with its own`})`,
  );
  out.push('');

  if (sorted.length === 0) {
    out.push('No readings in this interval.');
  } else {
    const rowTime = oneOffset ? 'ccc yyyy-LL-dd HH:mm' : "ccc yyyy-LL-dd HH:mm 'UTC'ZZ";
    const rows = sorted.map((o) => [localTime(o.measuredAt, zone).toFormat(rowTime), mmHg(o.systolic.value), mmHg(o.diastolic.value)] as const);
    const w = [Math.max(8, ...rows.map((r) => r[0].length)), Math.max(8, ...rows.map((r) => r[1].length)), Math.max(9, ...rows.map((r) => r[2].length))] as const;
    out.push(`${'Measured'.padEnd(w[0])}  ${'Systolic'.padStart(w[1])}  ${'Diastolic'.padStart(w[2])}`);
    for (const r of rows) out.push(`${r[0].padEnd(w[0])}  ${r[1].padStart(w[1])}  ${r[2].padStart(w[2])}`);
    const avg = (pick: (o: (typeof sorted)[number]) => number): number => Math.round(sorted.reduce((s, o) => s + pick(o), 0) / sorted.length);
    out.push('');
    out.push(`${sorted.length} reading${sorted.length === 1 ? '' : 's'}, average ${avg((o) => o.systolic.value)}/${avg((o) => o.diastolic.value)} mmHg`);
  }
  out.push('');
  out.push(
    renderChart(
      sorted.map((o) => ({ at: Date.parse(o.measuredAt), systolic: o.systolic.value, diastolic: o.diastolic.value })),
      { width: options.width, height: options.height ?? 16, from: Date.parse(list.from), to: Date.parse(list.to), zone, ...(options.ascii ? { ascii: true } : {}) },
    ),
  );
  return `${out.join('\n')}\n`;
};
