import { type Metric, type MetricObjectWithValues, type MetricValue, Registry } from "@prometheus-io/client";

/** The two exposition formats `/metrics` serves. */
export type ExpositionFormat = "prometheus" | "openmetrics";

export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
export const OPENMETRICS_CONTENT_TYPE = Registry.OPENMETRICS_CONTENT_TYPE;

/**
 * Picks the format from an Accept header: OpenMetrics when the client lists
 * `application/openmetrics-text` with a quality at least that of the Prometheus text format (as
 * Prometheus itself does), else the Prometheus text format 0.0.4.
 */
export function negotiateFormat(accept: string | undefined): ExpositionFormat {
  if (accept === undefined || accept === "") return "prometheus";
  let openMetrics = -1;
  let text = -1;
  for (const part of accept.split(",")) {
    const [type = "", ...params] = part.split(";").map((s) => s.trim().toLowerCase());
    let q = 1;
    for (const p of params) {
      if (p.startsWith("q=")) {
        const parsed = Number(p.slice(2));
        q = Number.isFinite(parsed) ? parsed : 0;
      }
    }
    if (type === "application/openmetrics-text") openMetrics = Math.max(openMetrics, q);
    else if (type === "text/plain") text = Math.max(text, q);
  }
  return openMetrics > 0 && openMetrics >= text ? "openmetrics" : "prometheus";
}

type CollectedMetric = MetricObjectWithValues<MetricValue<string>>;

/**
 * Renders `registry` in either format without touching the registry itself. The client renders by
 * the registry's content type, and rendering a registry as OpenMetrics renames its counters for
 * good (it strips `_total` from the metric objects). So every scrape collects once
 * (`getMetricsAsJSON`, which runs the collectors and applies default labels) and renders that
 * snapshot through a throw-away registry of the wanted type.
 */
export async function renderMetrics(
  registry: Registry,
  format: ExpositionFormat,
): Promise<{ readonly body: string; readonly contentType: string }> {
  const contentType = format === "openmetrics" ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE;
  const collected = (await registry.getMetricsAsJSON()) as CollectedMetric[];
  const view = new Registry(contentType);
  for (const metric of collected) {
    const name =
      format === "openmetrics" && metric.type === "counter" ? metric.name.replace(/_total$/, "") : metric.name;
    const frozen = { ...metric, name };
    const wrapper = {
      name,
      help: metric.help,
      type: metric.type,
      aggregator: metric.aggregator,
      get: async () => frozen,
    };
    view.registerMetric(wrapper as unknown as Metric<string>);
  }
  return { body: await view.metrics(), contentType };
}
