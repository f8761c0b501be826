import type { MetricsRegistry } from '../../src/adapters/metrics/registry';

/**
 * The value of one sample in the registry's exposition text: `name` with its `labels` exactly as rendered
 * (`'{publisher="directory"}'`, or `''` for none); NaN when there is no such sample.
 */
export const metricValue = (metrics: Pick<MetricsRegistry, 'render'>, name: string, labels = ''): number => {
  const sample = `${name}${labels}`.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return Number(new RegExp(`^${sample} (\\S+)$`, 'm').exec(metrics.render())?.[1] ?? 'NaN');
};
