export { Counter, DEFAULT_SECONDS_BUCKETS, Gauge, Histogram, MetricsRegistry, type Labels } from './registry';
