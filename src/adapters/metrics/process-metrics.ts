// The process's own health on /metrics, under the names Prometheus client libraries use (prom-client's default
// metrics), so dashboards made for Node services work: memory, CPU, open files, event-loop delay. And, for the
// embedded profile, the size of the store's files (the WAL included), which an operator watches for growth.
//
//   process_resident_memory_bytes, process_cpu_user_seconds_total, process_cpu_system_seconds_total,
//   process_open_fds (Linux), process_start_time_seconds, nodejs_heap_size_used_bytes,
//   nodejs_heap_size_total_bytes, nodejs_external_memory_bytes,
//   nodejs_eventloop_lag_p50_seconds / _p99_seconds / _max_seconds   since the previous scrape
//   rts_store_file_bytes{file}   file = one of a fixed list (events, events_wal, patient_keys, patient_keys_wal)
//   rts_log_lines_dropped_total   log lines dropped because the log's reader did not take them (bootstrap/log-stream.ts)
//
// Read when /metrics is scraped, not on a timer; the event-loop delay is sampled by a 100 ms interval timer of
// our own (how late each tick fires), kept since the previous scrape. Node 20's perf_hooks.monitorEventLoopDelay
// reported 22 ms for a loop blocked 150 ms, so it is not used. No label holds anything but the fixed file names.
import { readdirSync, statSync } from 'node:fs';
import type { MetricsRegistry } from './registry';

export type ProcessMetricsOptions = Readonly<{
  /** Files whose size to report, by a fixed, impersonal label (e.g. { events: '/data/telemed.sqlite' }). */
  files?: Readonly<Record<string, string>>;
  /**
   * Told when the event loop was blocked at least `blockedWarnMs` (default 5,000 ms): a stop (SIGSTOP, a frozen VM)
   * or a long synchronous stretch, which the log should show where it happened (the metric shows it only at the
   * next scrape, and not where).
   */
  onBlocked?: (blockedMs: number) => void;
  blockedWarnMs?: number;
  /** The log lines dropped so far because the log's reader did not take them (a count that only goes up). */
  logLinesDropped?: () => number;
}>;

export const registerProcessMetrics = (metrics: MetricsRegistry, options: ProcessMetricsOptions = {}): { stop(): void } => {
  const rss = metrics.gauge('process_resident_memory_bytes', 'Resident memory size in bytes');
  const cpuUser = metrics.counter('process_cpu_user_seconds_total', 'User CPU time spent in seconds');
  const cpuSystem = metrics.counter('process_cpu_system_seconds_total', 'System CPU time spent in seconds');
  const openFds = metrics.gauge('process_open_fds', 'Number of open file descriptors');
  const started = metrics.gauge('process_start_time_seconds', 'Start time of the process since the Unix epoch in seconds');
  const heapUsed = metrics.gauge('nodejs_heap_size_used_bytes', 'V8 heap used in bytes');
  const heapTotal = metrics.gauge('nodejs_heap_size_total_bytes', 'V8 heap size in bytes');
  const external = metrics.gauge('nodejs_external_memory_bytes', 'Memory of C++ objects bound to JavaScript objects, in bytes');
  const lagP50 = metrics.gauge('nodejs_eventloop_lag_p50_seconds', 'Median event-loop delay since the previous scrape');
  const lagP99 = metrics.gauge('nodejs_eventloop_lag_p99_seconds', '99th percentile of the event-loop delay since the previous scrape');
  const lagMax = metrics.gauge('nodejs_eventloop_lag_max_seconds', 'Largest event-loop delay since the previous scrape');
  const files = Object.entries(options.files ?? {});
  // There at 0 from the start, so that an alert on its increase sees the first gap in the log.
  const logLinesDropped = metrics.counter('rts_log_lines_dropped_total', "Log lines dropped because the log's reader (a pipe, a log shipper, a terminal) did not take them");
  const fileBytes = files.length > 0 ? metrics.gauge('rts_store_file_bytes', 'Size of the embedded store files in bytes (0: absent)', ['file']) : undefined;

  started.set({}, Math.round((Date.now() - performance.now()) / 1000));
  const delays = new EventLoopDelays(options.onBlocked, options.blockedWarnMs ?? 5_000);
  const cpuSeen = { user: 0, system: 0 };
  const fdDir = '/proc/self/fd';
  let fdsReadable = true;

  metrics.addCollector(() => {
    const memory = process.memoryUsage();
    rss.set({}, memory.rss);
    heapUsed.set({}, memory.heapUsed);
    heapTotal.set({}, memory.heapTotal);
    external.set({}, memory.external);
    const cpu = process.cpuUsage();
    cpuUser.inc({}, Math.max(0, cpu.user / 1e6 - cpuSeen.user));
    cpuSystem.inc({}, Math.max(0, cpu.system / 1e6 - cpuSeen.system));
    cpuSeen.user = Math.max(cpuSeen.user, cpu.user / 1e6);
    cpuSeen.system = Math.max(cpuSeen.system, cpu.system / 1e6);
    if (fdsReadable) {
      try {
        openFds.set({}, readdirSync(fdDir).length);
      } catch {
        fdsReadable = false; // not Linux: no such gauge value
      }
    }
    if (options.logLinesDropped) logLinesDropped.inc({}, Math.max(0, options.logLinesDropped() - logLinesDropped.get()));
    const lag = delays.takeInterval();
    lagP50.set({}, lag.p50Ms / 1000);
    lagP99.set({}, lag.p99Ms / 1000);
    lagMax.set({}, lag.maxMs / 1000);
    for (const [label, path] of files) {
      let size = 0;
      try {
        size = statSync(path).size;
      } catch {
        // absent (a WAL between checkpoints may be): 0
      }
      fileBytes!.set({ file: label }, size);
    }
  });
  return { stop: () => delays.stop() };
};

const TICK_MS = 100;
/** Most samples kept between two scrapes (10 minutes of ticks); beyond, the oldest go (the max is kept apart). */
const MAX_SAMPLES = 6_000;

/** How late a 100 ms interval timer fires: the event loop's delay, sampled. Unref'd: it keeps no process alive. */
class EventLoopDelays {
  private samples: number[] = [];
  private maxMs = 0;
  private last = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(onBlocked: ((blockedMs: number) => void) | undefined, blockedWarnMs: number) {
    this.timer = setInterval(() => {
      const now = performance.now();
      const late = Math.max(0, now - this.last - TICK_MS);
      this.last = now;
      if (onBlocked && late >= blockedWarnMs) onBlocked(Math.round(late));
      this.maxMs = Math.max(this.maxMs, late);
      this.samples.push(late);
      if (this.samples.length > MAX_SAMPLES) this.samples.splice(0, this.samples.length - MAX_SAMPLES);
    }, TICK_MS);
    this.timer.unref();
  }

  /** The delays since the previous call (0 when no tick fired), and a new interval begins. */
  takeInterval(): { p50Ms: number; p99Ms: number; maxMs: number } {
    const sorted = this.samples.sort((a, b) => a - b);
    const at = (q: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
    const result = { p50Ms: at(0.5), p99Ms: at(0.99), maxMs: this.maxMs };
    this.samples = [];
    this.maxMs = 0;
    return result;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
