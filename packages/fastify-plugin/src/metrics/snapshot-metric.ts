import type { Aggregator, Metric, Registry } from "@prometheus-io/client";

/** One sample of a {@link SnapshotGauge}. */
export interface GaugeSample {
  readonly labels: Readonly<Record<string, string | number>>;
  readonly value: number;
}

/**
 * A gauge whose samples are produced at scrape time by `read`, with no stored state. Unlike the
 * client's `Gauge`, it can report no sample at all: when the backlog cannot be read, the series
 * disappear (and `eventlane_backlog_up` says why) instead of showing a misleading 0.
 */
export interface SnapshotGauge {
  readonly name: string;
  readonly help: string;
  readonly type: "gauge";
  readonly aggregator: Aggregator;
  readonly labelNames: readonly string[];
  get(): Promise<{
    name: string;
    help: string;
    type: "gauge";
    aggregator: Aggregator;
    values: { labels: Record<string, string | number>; value: number }[];
  }>;
  reset(): void;
}

export function snapshotGauge(config: {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly string[];
  readonly read: () => Promise<readonly GaugeSample[]>;
}): SnapshotGauge {
  const { name, help, read } = config;
  // Cluster-wide figures are the same in every worker: aggregate with max, never sum.
  const aggregator: Aggregator = "max";
  return {
    name,
    help,
    type: "gauge",
    aggregator,
    labelNames: config.labelNames ?? [],
    async get() {
      const samples = await read();
      return {
        name,
        help,
        type: "gauge",
        aggregator,
        values: samples.map((s) => ({ labels: { ...s.labels }, value: s.value })),
      };
    },
    reset() {},
  };
}

/** Registers a structural metric (the client's `registerMetric` is typed for its own classes only). */
export function registerStructural(registry: Registry, metric: SnapshotGauge | { readonly name: string }): void {
  registry.registerMetric(metric as unknown as Metric<string>);
}
