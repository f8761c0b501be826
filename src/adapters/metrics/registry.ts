// A tiny Prometheus registry: counters, gauges and histograms rendered in the text exposition format 0.0.4
// (served as `text/plain; version=0.0.4` on the hub's /metrics).
//
// Labels must never carry personal data: no patient identifier, CPR number, name, document id or anything
// derived from them that could be linked back. Use small, fixed vocabularies (role, queue kind, outcome). A label
// value is free text to this registry: it is the caller's job to keep it impersonal and low in cardinality.

export type Labels = Readonly<Record<string, string>>;

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  render(): string[];
}

abstract class Labelled<T> {
  protected readonly series = new Map<string, { labels: Labels; value: T }>();
  constructor(
    readonly name: string,
    readonly help: string,
    protected readonly labelNames: readonly string[],
  ) {
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name: ${name}`);
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith('__')) throw new Error(`invalid label name on ${name}: ${label}`);
      if (label === 'le') throw new Error(`label name "le" is reserved (${name})`);
    }
  }

  protected key(labels: Labels): string {
    const given = Object.keys(labels);
    if (given.length !== this.labelNames.length || this.labelNames.some((l) => typeof labels[l] !== 'string')) {
      throw new Error(`${this.name} takes labels {${this.labelNames.join(',')}}, got {${given.join(',')}}`);
    }
    return this.labelNames.map((l) => labels[l]).join('\u0000');
  }

  protected entry(labels: Labels, init: () => T): { labels: Labels; value: T } {
    const key = this.key(labels);
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels: { ...labels }, value: init() };
      this.series.set(key, entry);
    }
    return entry;
  }
}

/**
 * A counter's series exist from 0, not from their first increment: Prometheus's rate() and increase() need a sample
 * before the first event, or the first event never shows (an alert on `increase(x[5m]) > 0` stays silent when the
 * series appears at 1). An unlabelled counter starts at 0 by itself; give a labelled one its known label values
 * with `zero` (a fixed vocabulary only: a queue kind, a role, a result word).
 */
export class Counter extends Labelled<number> implements Metric {
  readonly type = 'counter' as const;
  constructor(name: string, help: string, labelNames: readonly string[]) {
    super(name, help, labelNames);
    if (labelNames.length === 0) this.zero({});
  }
  /** Starts these series at 0 (those already counting keep their value). */
  zero(...labelSets: Labels[]): this {
    for (const labels of labelSets) this.entry(labels, () => 0);
    return this;
  }
  inc(labels: Labels = {}, by = 1): void {
    if (!(by >= 0) || !Number.isFinite(by)) throw new Error(`${this.name}: a counter only goes up (by ${by})`);
    this.entry(labels, () => 0).value += by;
  }
  get(labels: Labels = {}): number {
    return this.series.get(this.key(labels))?.value ?? 0;
  }
  render(): string[] {
    return [...this.series.values()].map((s) => `${this.name}${formatLabels(s.labels)} ${formatNumber(s.value)}`);
  }
}

export class Gauge extends Labelled<number> implements Metric {
  readonly type = 'gauge' as const;
  set(labels: Labels, value: number): void {
    this.entry(labels, () => 0).value = value;
  }
  inc(labels: Labels = {}, by = 1): void {
    this.entry(labels, () => 0).value += by;
  }
  get(labels: Labels = {}): number {
    return this.series.get(this.key(labels))?.value ?? 0;
  }
  /** Drops the sample: the gauge then renders its HELP and TYPE only (a value that is not known now, not a 0). */
  remove(labels: Labels = {}): void {
    this.series.delete(this.key(labels));
  }
  render(): string[] {
    return [...this.series.values()].map((s) => `${this.name}${formatLabels(s.labels)} ${formatNumber(s.value)}`);
  }
}

interface HistogramValue {
  counts: number[];
  sum: number;
  count: number;
}

export const DEFAULT_SECONDS_BUCKETS: readonly number[] = [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30];

export class Histogram extends Labelled<HistogramValue> implements Metric {
  readonly type = 'histogram' as const;
  readonly buckets: readonly number[];
  constructor(name: string, help: string, labelNames: readonly string[], buckets: readonly number[] = DEFAULT_SECONDS_BUCKETS) {
    super(name, help, labelNames);
    const sorted = [...new Set(buckets)].filter((b) => Number.isFinite(b)).sort((a, b) => a - b);
    if (sorted.length === 0) throw new Error(`${name}: at least one finite bucket`);
    this.buckets = sorted;
  }
  observe(labels: Labels, value: number): void {
    if (Number.isNaN(value)) return;
    const entry = this.entry(labels, () => ({ counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    this.buckets.forEach((bound, i) => {
      if (value <= bound) entry.value.counts[i]! += 1;
    });
    entry.value.sum += value;
    entry.value.count += 1;
  }
  snapshot(labels: Labels = {}): { count: number; sum: number } {
    const v = this.series.get(this.key(labels))?.value;
    return { count: v?.count ?? 0, sum: v?.sum ?? 0 };
  }
  render(): string[] {
    const lines: string[] = [];
    for (const s of this.series.values()) {
      this.buckets.forEach((bound, i) => {
        lines.push(`${this.name}_bucket${formatLabels(s.labels, ['le', formatNumber(bound)])} ${s.value.counts[i]}`);
      });
      lines.push(`${this.name}_bucket${formatLabels(s.labels, ['le', '+Inf'])} ${s.value.count}`);
      lines.push(`${this.name}_sum${formatLabels(s.labels)} ${formatNumber(s.value.sum)}`);
      lines.push(`${this.name}_count${formatLabels(s.labels)} ${s.value.count}`);
    }
    return lines;
  }
}

export class MetricsRegistry {
  private readonly metrics = new Map<string, Metric>();
  private readonly collectors: (() => void)[] = [];

  /** `collect` runs at the start of every render: for gauges read from the process or the disk when scraped. */
  addCollector(collect: () => void): void {
    this.collectors.push(collect);
  }

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.register(name, () => new Counter(name, help, labelNames), 'counter');
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.register(name, () => new Gauge(name, help, labelNames), 'gauge');
  }
  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets?: readonly number[]): Histogram {
    return this.register(name, () => new Histogram(name, help, labelNames, buckets), 'histogram');
  }

  /** The text exposition format (version 0.0.4); metrics without samples print their HELP and TYPE only. */
  render(): string {
    for (const collect of this.collectors) {
      try {
        collect();
      } catch {
        // a collector that cannot read (a file gone, /proc missing) leaves its gauges as they were
      }
    }
    const lines: string[] = [];
    for (const metric of this.metrics.values()) {
      lines.push(`# HELP ${metric.name} ${metric.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`);
      lines.push(`# TYPE ${metric.name} ${metric.type}`);
      lines.push(...metric.render());
    }
    return lines.length > 0 ? `${lines.join('\n')}\n` : '';
  }

  static readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';

  /** Same name twice returns the existing metric (modules may ask independently); a different type is an error. */
  private register<M extends Metric>(name: string, create: () => M, type: Metric['type']): M {
    const existing = this.metrics.get(name);
    if (existing) {
      if (existing.type !== type) throw new Error(`metric ${name} is already registered as a ${existing.type}`);
      return existing as M;
    }
    const metric = create();
    this.metrics.set(name, metric);
    return metric;
  }
}

function formatLabels(labels: Labels, extra?: [string, string]): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra) pairs.push(`${extra[0]}="${extra[1]}"`);
  return pairs.length > 0 ? `{${pairs.join(',')}}` : '';
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatNumber(value: number): string {
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  if (Number.isNaN(value)) return 'NaN';
  return String(value);
}
