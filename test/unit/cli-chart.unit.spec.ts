import { ASCII_GLYPHS, UNICODE_GLYPHS, renderChart, yScale, type ChartPoint } from '../../src/adapters/cli/chart';

const DAY = 86_400_000;
const from = Date.parse('2026-05-04T00:00:00Z');
const to = from + 7 * DAY;
const opts = { width: 80, height: 16, from, to, zone: 'UTC' } as const;

/** The plot line whose y label is `value`, without its label. */
const rowOf = (chart: string, value: number): string => {
  const line = chart.split('\n').find((l) => new RegExp(`^\\s*${value} [┤|]`).test(l));
  if (line === undefined) throw new Error(`no row labelled ${value} in\n${chart}`);
  return line.replace(/^\s*\d+ [┤|]/, '');
};

const plotLines = (chart: string): string[] => chart.split('\n').filter((l) => /^\s*\d+ [┤|]/.test(l));

describe('renderChart', () => {
  const week: ChartPoint[] = [
    { at: from + 0.3 * DAY, systolic: 140, diastolic: 90 },
    { at: from + 2.3 * DAY, systolic: 130, diastolic: 80 },
    { at: from + 5.3 * DAY, systolic: 120, diastolic: 70 },
  ];

  it('puts each systolic and diastolic marker on the row of its value', () => {
    const chart = renderChart(week, opts);
    expect(rowOf(chart, 140)).toContain(UNICODE_GLYPHS.systolic);
    expect(rowOf(chart, 130)).toContain(UNICODE_GLYPHS.systolic);
    expect(rowOf(chart, 120)).toContain(UNICODE_GLYPHS.systolic);
    expect(rowOf(chart, 90)).toContain(UNICODE_GLYPHS.diastolic);
    expect(rowOf(chart, 80)).toContain(UNICODE_GLYPHS.diastolic);
    expect(rowOf(chart, 70)).toContain(UNICODE_GLYPHS.diastolic);
    // Every marker is where it belongs and nowhere else: three of each series.
    expect((chart.match(/▲/g) ?? []).length).toBe(3 + 1); // + the legend
    expect((chart.match(/▼/g) ?? []).length).toBe(3 + 1);
    expect(rowOf(chart, 100)).not.toMatch(/[▲▼]/);
  });

  it('places points left to right by time within the interval', () => {
    const chart = renderChart(week, opts);
    const cols = [140, 130, 120].map((v) => rowOf(chart, v).indexOf('▲'));
    expect(cols[0]!).toBeLessThan(cols[1]!);
    expect(cols[1]!).toBeLessThan(cols[2]!);
    // A reading 0.3 of a day into a 7-day interval lies in the first tenth of the plot.
    const plotWidth = rowOf(chart, 100).length || 80 - 6;
    expect(cols[0]!).toBeLessThan(plotWidth / 10);
  });

  it('labels the y axis in mmHg and the x axis with dates', () => {
    const chart = renderChart(week, opts);
    const lines = chart.split('\n');
    expect(lines[0]!.trim()).toBe('mmHg');
    const axisLabels = lines[lines.length - 2]!;
    // Day and month in words: "05-06" was read as 5 June or 6 May depending on where the reader lives.
    for (const day of ['5 May', '6 May', '7 May', '8 May', '9 May', '10 May']) expect(axisLabels).toContain(day);
    expect(axisLabels).not.toMatch(/\d\d-\d\d/);
    expect(lines[lines.length - 1]).toContain('▲ systolic');
    expect(lines[lines.length - 1]).toContain('▼ diastolic');
  });

  it('never writes a line wider than asked', () => {
    for (const width of [30, 40, 60, 80, 120]) {
      const chart = renderChart(week, { ...opts, width });
      for (const line of chart.split('\n')) expect(line.length).toBeLessThanOrEqual(width);
    }
  });

  it('uses at most the rows asked for', () => {
    const wide: ChartPoint[] = [{ at: from + DAY, systolic: 250, diastolic: 40 }];
    for (const height of [3, 8, 16]) expect(plotLines(renderChart(wide, { ...opts, height })).length).toBeLessThanOrEqual(height);
  });

  it('draws an empty interval: axes, date labels and a note, no markers', () => {
    const chart = renderChart([], opts);
    expect(plotLines(chart).join('')).not.toMatch(/[▲▼◆]/);
    expect(chart).toContain('(no readings)');
    expect(chart).toContain('5 May');
    for (const line of chart.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
  });

  it('draws a single point, with or without an interval', () => {
    const one: ChartPoint[] = [{ at: from + 3 * DAY, systolic: 126, diastolic: 70 }];
    const inWeek = renderChart(one, opts);
    expect(rowOf(inWeek, 125)).toContain('▲'); // 126 is nearest the 125 row
    expect(rowOf(inWeek, 70)).toContain('▼');
    const alone = renderChart(one, { width: 80, height: 16, zone: 'UTC' });
    expect(rowOf(alone, 70)).toContain('▼');
    expect(alone).toContain('7 May 00:00');
  });

  it('marks a cell where both series meet, and draws ASCII only when asked', () => {
    // On a 100 mmHg scale, 101 and 99 share the row of 100.
    const points = [{ at: from + DAY, systolic: 200, diastolic: 40 }, { at: from + 3 * DAY, systolic: 101, diastolic: 99 }];
    const chart = renderChart(points, { ...opts, height: 3, ascii: true });
    expect(rowOf(chart, 100)).toContain(ASCII_GLYPHS.both);
    expect(chart).toContain(ASCII_GLYPHS.both);
    expect(chart).toMatch(/^[\x20-\x7e\n]*$/);
    // The legend explains that mark too (it named only S and D), and only where the chart has one.
    expect(chart.split('\n').at(-1)).toMatch(/S systolic {2}D diastolic {2}# both in one place$/);
    expect(renderChart(points, { ...opts, height: 3 }).split('\n').at(-1)).toContain('◆ both in one place');
    expect(renderChart(week, opts).split('\n').at(-1)).not.toContain('both');
  });

  it('labels months in words with their year, over a longer interval', () => {
    const quarter = renderChart(week, { ...opts, to: from + 90 * DAY, width: 40 });
    expect(quarter.split('\n').at(-2)).toMatch(/Jun 2026/);
    for (const line of quarter.split('\n')) expect(line.length).toBeLessThanOrEqual(40);
  });

  it('says when readings of one series share a mark (11 readings drew 10 marks without a word)', () => {
    // Three identical readings at nearly the same time: one cell of each series.
    const same: ChartPoint[] = [
      ...week,
      { at: from + 6 * DAY, systolic: 120, diastolic: 80 },
      { at: from + 6 * DAY + 60_000, systolic: 120, diastolic: 80 },
      { at: from + 6 * DAY + 120_000, systolic: 120, diastolic: 80 },
    ];
    const chart = renderChart(same, opts);
    expect(plotLines(chart).join('').match(/▲/g)).toHaveLength(4);
    expect(chart).toContain('3 readings share a mark (close in time and value; the table lists each).');
    // Only the systolic marks coincide: said of that series alone.
    const onlySystolic = renderChart([...week, { at: from + 6 * DAY, systolic: 150, diastolic: 95 }, { at: from + 6 * DAY, systolic: 150, diastolic: 70 }], opts);
    expect(onlySystolic).toContain('2 readings share a systolic mark (');
    expect(onlySystolic).not.toContain('diastolic mark');
    // Readings that do not coincide: no note.
    expect(renderChart(week, opts)).not.toContain('share');
    // The note and the legend fit a narrow chart too.
    const narrow = renderChart(same, { ...opts, width: 30, ascii: true });
    for (const line of narrow.split('\n')) expect(line.length).toBeLessThanOrEqual(30);
    expect(narrow.replace(/\n\s*/g, ' ')).toContain('3 readings share a mark');
  });

  it('chooses a finer step when the values fit, and whole-number labels always', () => {
    expect(yScale([70, 140], 16)).toEqual({ bottom: 70, step: 5, rows: 15 });
    expect(yScale([70, 140], 17)).toEqual({ bottom: 65, step: 5, rows: 17 }); // a spare row each side
    expect(yScale([70, 140], 8).step).toBe(10);
    expect(yScale([], 12)).toEqual({ bottom: 60, step: 10, rows: 11 });
  });
});
