import type { Aggregator, Metric, Registry } from "@prometheus-io/client";

/** One sample of a {@link SnapshotMetric}. */
export interface SnapshotSample {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
}

/**
 * A gauge or counter whose samples are produced at scrape time by `read`, with no stored state.
 * Unlike the client's `Gauge`, it can report no sample at all: when the backlog cannot be read, the
 * series disappear (and `eventlane_backlog_up` says why) instead of showing a misleading 0. As a
 * counter, it reports a total kept elsewhere (a consumer's `stats()`), which the client's `Counter`
 * could only mirror by resetting and re-incrementing.
 */
export interface SnapshotMetric<T extends "gauge" | "counter" = "gauge" | "counter"> {
  readonly name: string;
  readonly help: string;
  readonly type: T;
  readonly aggregator: Aggregator;
  readonly labelNames: readonly string[];
  get(): Promise<{
    name: string;
    help: string;
    type: T;
    aggregator: Aggregator;
    values: { labels: Record<string, string | number>; value: number }[];
  }>;
  reset(): void;
}

export type SnapshotGauge = SnapshotMetric<"gauge">;
export type SnapshotCounter = SnapshotMetric<"counter">;

interface SnapshotConfig {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly string[];
  readonly read: () => Promise<readonly SnapshotSample[]>;
}

function snapshotMetric<T extends "gauge" | "counter">(
  type: T,
  aggregator: Aggregator,
  config: SnapshotConfig,
): SnapshotMetric<T> {
  const { name, help, read } = config;
  return {
    name,
    help,
    type,
    aggregator,
    labelNames: config.labelNames ?? [],
    async get() {
      const samples = await read();
      return {
        name,
        help,
        type,
        aggregator,
        values: samples.map((s) => ({ labels: { ...s.labels }, value: s.value })),
      };
    },
    reset() {},
  };
}

/**
 * A cluster-wide gauge by default: the same in every worker, so aggregated with max, never sum.
 * Pass `aggregator` for per-instance figures.
 */
export function snapshotGauge(config: SnapshotConfig & { readonly aggregator?: Aggregator }): SnapshotGauge {
  return snapshotMetric("gauge", config.aggregator ?? "max", config);
}

/** A per-instance counter: workers' totals add up. `name` ends in `_total`. */
export function snapshotCounter(config: SnapshotConfig): SnapshotCounter {
  return snapshotMetric("counter", "sum", config);
}

/** Registers a structural metric (the client's `registerMetric` is typed for its own classes only). */
export function registerStructural(registry: Registry, metric: SnapshotMetric | { readonly name: string }): void {
  registry.registerMetric(metric as unknown as Metric<string>);
}
