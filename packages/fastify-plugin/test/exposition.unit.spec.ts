import { Counter, Registry } from "@prometheus-io/client";
import { describe, expect, it } from "vitest";
import { negotiateFormat } from "../src/index.ts";
import { renderMetrics } from "../src/metrics/exposition.ts";
import { BoundExceededError, SharedAttempt, TooManyPendingError, withTimeout } from "../src/internal/bounded.ts";

describe("negotiateFormat", () => {
  it.each([
    [undefined, "prometheus"],
    ["", "prometheus"],
    ["*/*", "prometheus"],
    ["text/plain;version=0.0.4", "prometheus"],
    ["application/openmetrics-text; version=1.0.0; charset=utf-8", "openmetrics"],
    // Prometheus 2.x
    [
      "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
      "openmetrics",
    ],
    // Prometheus 3.x
    [
      "application/openmetrics-text;version=1.0.0;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
      "openmetrics",
    ],
    // scrape_protocols: [PrometheusText0.0.4] first
    ["text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5", "prometheus"],
    ["application/openmetrics-text;q=0", "prometheus"],
  ] as const)("%s -> %s", (accept, format) => {
    expect(negotiateFormat(accept)).toBe(format);
  });
});

describe("renderMetrics", () => {
  it("renders both formats from one registry without renaming its counters", async () => {
    const registry = new Registry();
    const c = new Counter({ name: "demo_events_total", help: "demo", labelNames: ["topic"], registers: [registry] });
    c.inc({ topic: "a" }, 2);
    const om = await renderMetrics(registry, "openmetrics");
    expect(om.contentType).toBe("application/openmetrics-text; version=1.0.0; charset=utf-8");
    expect(om.body).toContain("# TYPE demo_events counter");
    expect(om.body).toContain('demo_events_total{topic="a"} 2');
    expect(om.body.endsWith("# EOF\n")).toBe(true);
    const text = await renderMetrics(registry, "prometheus");
    expect(text.contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(text.body).toContain("# TYPE demo_events_total counter");
    expect(text.body).toContain('demo_events_total{topic="a"} 2');
    expect(text.body).not.toContain("# EOF");
  });
});

describe("SharedAttempt", () => {
  it("shares one attempt between concurrent callers", async () => {
    let runs = 0;
    const attempt = new SharedAttempt(
      "x",
      async () => {
        runs++;
        await new Promise((r) => setTimeout(r, 20));
        return runs;
      },
      { maxAgeMs: 1000 },
    );
    const results = await Promise.all([attempt.run(), attempt.run(), attempt.run()]);
    expect(results).toEqual([1, 1, 1]);
    expect(runs).toBe(1);
  });

  it("abandons a hung attempt after maxAgeMs, caps the hung ones, and forgets them later", async () => {
    let runs = 0;
    const never = new SharedAttempt(
      "db",
      () => {
        runs++;
        return new Promise<void>(() => {});
      },
      { maxAgeMs: 10, maxAbandoned: 2, forgetAfterMs: 200 },
    );
    await expect(withTimeout(never.run(), 15, "db")).rejects.toBeInstanceOf(BoundExceededError);
    // Older than maxAgeMs: abandoned, and a second attempt starts instead of joining it.
    await expect(withTimeout(never.run(), 15, "db")).rejects.toBeInstanceOf(BoundExceededError);
    expect(runs).toBe(2);
    // Two hung and abandoned: fail fast without taking a third connection.
    await expect(never.run()).rejects.toBeInstanceOf(TooManyPendingError);
    expect(runs).toBe(2);
    expect(never.abandoned).toBe(2);
    // Past forgetAfterMs they stop counting, so the check can recover once the network does.
    await new Promise((r) => setTimeout(r, 250));
    void withTimeout(never.run(), 5, "db").catch(() => {});
    expect(runs).toBe(3);
  });
});
