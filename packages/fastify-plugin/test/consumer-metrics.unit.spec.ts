import { Counter, Registry } from "@prometheus-io/client";
import { describe, expect, it } from "vitest";
import type { BacklogReading } from "../src/backlog/backlog-monitor.ts";
import { DEFAULTS, type EventlaneConsumerHandle, type EventlaneConsumerPartitionLag } from "../src/index.ts";
import { registerConsumerMetrics } from "../src/metrics/consumer-metrics.ts";
import { renderMetrics } from "../src/metrics/exposition.ts";
import { buildStatus } from "../src/status/status-report.ts";
import { parseSamples, promtool, sampleValue } from "./support.ts";

/** A consumer handle with settable stats and lag: the plugin's structural interface, no Kafka. */
class FakeConsumer implements EventlaneConsumerHandle {
  readonly options: { readonly groupId: string };
  counts = {
    chunks: 0,
    applied: 0,
    ignored: 0,
    duplicates: 0,
    deadLettered: 0,
    handlerFailures: 0,
    errors: 0,
    replayed: 0,
  };
  partitions: EventlaneConsumerPartitionLag[] = [];
  broken = false;

  constructor(groupId: string) {
    this.options = { groupId };
  }
  stats() {
    if (this.broken) throw new Error("stats exploded at db-host-7");
    return { ...this.counts, received: 0, gaps: 0, skipped: 0 };
  }
  lag() {
    if (this.broken) throw new Error("lag exploded at db-host-7");
    return this.partitions;
  }
}

const part = (topic: string, partition: number, committed: number | null, end: number) => ({
  topic,
  partition,
  committedOffset: committed === null ? null : String(committed),
  endOffset: String(end),
  lag: committed === null ? null : end - committed,
});

async function scrape(registry: Registry) {
  const { body } = await renderMetrics(registry, "prometheus");
  return { body, samples: parseSamples(body) };
}

describe("consumer metrics", () => {
  it("export lag per known partition and the counters per group, read at every scrape", async () => {
    const email = new FakeConsumer("email");
    email.counts = {
      chunks: 4,
      applied: 10,
      ignored: 2,
      duplicates: 3,
      deadLettered: 1,
      handlerFailures: 5,
      errors: 1,
      replayed: 1,
    };
    email.partitions = [
      part("shop.orders", 0, 90, 130),
      part("shop.orders", 1, 7, 7),
      part("shop.orders", 2, null, 12),
    ];
    const billing = new FakeConsumer("billing");
    billing.partitions = [part("shop.orders", 0, 100, 130)];
    const registry = new Registry();
    registerConsumerMetrics(registry, [email, billing]);

    const { body, samples } = await scrape(registry);
    const lag = (group: string, partition: number) =>
      sampleValue(samples, "eventlane_consumer_lag_records", {
        group,
        topic: "shop.orders",
        partition: String(partition),
      });
    expect(lag("email", 0)).toBe(40);
    expect(lag("email", 1)).toBe(0);
    // Not known yet: no series rather than a 0 that would look healthy.
    expect(lag("email", 2)).toBeUndefined();
    expect(lag("billing", 0)).toBe(30);
    expect(samples.filter((s) => s.name === "eventlane_consumer_lag_records")).toHaveLength(3);

    const events = (group: string, outcome: string) =>
      sampleValue(samples, "eventlane_consumer_events_total", { group, outcome });
    expect(events("email", "applied")).toBe(10);
    expect(events("email", "ignored")).toBe(2);
    expect(events("email", "duplicate")).toBe(3);
    expect(events("email", "dead_lettered")).toBe(1);
    expect(events("billing", "applied")).toBe(0);
    expect(sampleValue(samples, "eventlane_consumer_chunks_total", { group: "email" })).toBe(4);
    expect(sampleValue(samples, "eventlane_consumer_handler_failures_total", { group: "email" })).toBe(5);
    expect(sampleValue(samples, "eventlane_consumer_errors_total", { group: "email" })).toBe(1);
    expect(sampleValue(samples, "eventlane_consumer_dead_letters_replayed_total", { group: "email" })).toBe(1);
    expect(sampleValue(samples, "eventlane_consumer_errors_total", { group: "billing" })).toBe(0);
    expect(body).toContain("# TYPE eventlane_consumer_lag_records gauge");
    expect(body).toContain("# TYPE eventlane_consumer_events_total counter");
    const check = await promtool(["check", "metrics"], body);
    expect(check.output).toBe("");
    expect(check.code).toBe(0);

    // Collected at scrape time: the next scrape shows the consumer's new figures, and a partition
    // it no longer owns is gone.
    email.counts = { ...email.counts, applied: 50, chunks: 9 };
    email.partitions = [part("shop.orders", 0, 130, 130)];
    const next = (await scrape(registry)).samples;
    expect(sampleValue(next, "eventlane_consumer_events_total", { group: "email", outcome: "applied" })).toBe(50);
    expect(sampleValue(next, "eventlane_consumer_chunks_total", { group: "email" })).toBe(9);
    expect(
      sampleValue(next, "eventlane_consumer_lag_records", { group: "email", topic: "shop.orders", partition: "0" }),
    ).toBe(0);
    expect(
      sampleValue(next, "eventlane_consumer_lag_records", { group: "email", topic: "shop.orders", partition: "1" }),
    ).toBeUndefined();
  });

  it("add up two members of one group, keep the larger lag of a partition both list, and skip a failing handle", async () => {
    const a = new FakeConsumer("email");
    a.counts = { ...a.counts, applied: 3, errors: 1 };
    a.partitions = [part("t", 0, 5, 9), part("t", 1, 2, 4)];
    const b = new FakeConsumer("email");
    b.counts = { ...b.counts, applied: 4, errors: 2 };
    // Mid-rebalance both still list partition 1.
    b.partitions = [part("t", 1, 1, 4), part("t", 2, 0, 1)];
    const broken = new FakeConsumer("audit");
    broken.broken = true;
    const registry = new Registry();
    registerConsumerMetrics(registry, [a, b, broken]);

    const { body, samples } = await scrape(registry);
    expect(sampleValue(samples, "eventlane_consumer_events_total", { group: "email", outcome: "applied" })).toBe(7);
    expect(sampleValue(samples, "eventlane_consumer_errors_total", { group: "email" })).toBe(3);
    const lag = samples.filter((s) => s.name === "eventlane_consumer_lag_records");
    expect(lag.map((s) => [s.labels.partition, s.value])).toEqual([
      ["0", 4],
      ["1", 3],
      ["2", 1],
    ]);
    expect(body).not.toContain('group="audit"');
    expect(body).not.toContain("db-host-7");
    expect((await promtool(["check", "metrics"], body)).code).toBe(0);
  });

  it("render as OpenMetrics counters and leave the caller's registry as it was when unregistered", async () => {
    const registry = new Registry();
    new Counter({ name: "shop_checkouts_total", help: "Checkouts.", registers: [registry] }).inc();
    const c = new FakeConsumer("email");
    c.counts = { ...c.counts, applied: 2 };
    const unregister = registerConsumerMetrics(registry, [c]);
    const om = await renderMetrics(registry, "openmetrics");
    expect(om.body).toContain("# TYPE eventlane_consumer_events counter");
    expect(om.body).toContain('eventlane_consumer_events_total{group="email",outcome="applied"} 2');
    // A second registration of the same names fails and leaves nothing half-registered.
    expect(() => registerConsumerMetrics(registry, [c])).toThrow();
    unregister();
    expect(registry.getMetricsAsArray().map((m) => m.name)).toEqual(["shop_checkouts_total"]);
  });
});

describe("consumers in the status body", () => {
  const reading: BacklogReading = {
    ok: true,
    snapshot: {
      observedAt: new Date(0),
      queryDurationSeconds: 0.001,
      shardCount: 1,
      shards: [
        {
          shard: 0,
          pendingRows: 0,
          lagSeconds: 0,
          hasLeader: true,
          epoch: 1,
          owner: "r",
          heartbeatAgeSeconds: 0.1,
        },
      ],
      pendingRows: 0,
      maxLagSeconds: 0,
      deadLetterRows: 0,
      parkedKeys: 0,
      shardsWithoutLeader: 0,
      notifyQueueUsageRatio: 0,
    },
  };
  const thresholds = DEFAULTS.thresholds;

  it("lists each consumer's partitions and fires consumer_lag above the threshold only", () => {
    const email = new FakeConsumer("email");
    email.partitions = [part("t", 0, 0, 10_001), part("t", 1, null, 3)];
    const audit = new FakeConsumer("audit");
    audit.partitions = [part("t", 0, 0, 10_000)];
    const broken = new FakeConsumer("broken");
    broken.broken = true;
    const status = buildStatus(reading, thresholds, undefined, [email, audit, broken]);
    expect(status.status).toBe("degraded");
    expect(status.consumers).toEqual([
      { group: "email", maxLagRecords: 10_001, partitions: email.partitions },
      { group: "audit", maxLagRecords: 10_000, partitions: audit.partitions },
      { group: "broken", maxLagRecords: null, partitions: null },
    ]);
    expect(status.conditions.find((c) => c.name === "consumer_lag")).toEqual({
      name: "consumer_lag",
      firing: true,
      value: 10_001,
      threshold: 10_000,
      groups: ["email"],
    });

    email.partitions = [part("t", 0, 10_001, 10_001)];
    const caughtUp = buildStatus(reading, thresholds, undefined, [email, audit]);
    expect(caughtUp.status).toBe("ok");
    expect(caughtUp.conditions.find((c) => c.name === "consumer_lag")).toMatchObject({ firing: false, value: 10_000 });
  });

  it("leaves consumer_lag out without consumers, and still lists consumers when the backlog is unreadable", () => {
    const none = buildStatus(reading, thresholds, undefined, []);
    expect(none.consumers).toEqual([]);
    expect(none.conditions.map((c) => c.name)).not.toContain("consumer_lag");

    const email = new FakeConsumer("email");
    email.partitions = [part("t", 0, 3, 5)];
    const unknown = buildStatus({ ok: false, observedAt: new Date(0), reason: "timeout" }, thresholds, undefined, [
      email,
    ]);
    expect(unknown.status).toBe("unknown");
    expect(unknown.consumers).toEqual([{ group: "email", maxLagRecords: 2, partitions: email.partitions }]);
  });
});
