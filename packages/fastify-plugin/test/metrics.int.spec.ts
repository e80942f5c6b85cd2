import { createEventStore, defineEvent } from "@eventlane/core";
import { murmur2 } from "@eventlane/core/internal";
import { shardOfKeyHash } from "@eventlane/core/internal";
import { Counter, Registry } from "@prometheus-io/client";
import { Schema } from "effect";
import Fastify, { type FastifyInstance } from "fastify";
import { type Kysely, sql } from "kysely";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { TestDatabase } from "@eventlane/test-kit";
import { eventlane, type EventlanePluginOptions } from "../src/index.ts";
import { FakeRelay, kyselyFor, migratedDatabase, parseSamples, promtool, sampleValue } from "./support.ts";

const OrderPlaced = defineEvent({
  type: "order_placed",
  schema: Schema.Struct({ orderId: Schema.String, secretNote: Schema.String }),
  route: { topic: "shop.orders", key: (d) => d.orderId },
});

let tdb: TestDatabase;
let db: Kysely<unknown>;
let closeDb: () => Promise<void>;
const store = createEventStore();
let app: FastifyInstance;

beforeAll(async () => {
  ({ tdb, db, close: closeDb } = await migratedDatabase());
});
afterAll(() => closeDb());
beforeEach(async () => {
  await sql`TRUNCATE eventlane.outbox, eventlane.key_sequences, eventlane.parked_keys, eventlane.relay_shards, eventlane.relay_config`.execute(
    db,
  );
  app = Fastify();
});
afterEach(() => app.close());

async function start(options: Omit<EventlanePluginOptions, "db"> & { db?: Kysely<unknown> } = {}): Promise<void> {
  await app.register(eventlane, { db, ...options });
  await app.ready();
}

async function scrape(headers: Record<string, string> = {}) {
  const res = await app.inject({ method: "GET", url: "/metrics", headers });
  expect(res.statusCode).toBe(200);
  return { res, samples: parseSamples(res.body.replace(/# EOF\n$/, "")) };
}

/** The relay's shard of a key, by the expression the backlog statement counts with. */
const shardOf = (key: string, shards: number) => shardOfKeyHash(murmur2(key), shards);

describe("/metrics backlog figures", () => {
  it("match the database after known writes, per shard, and pass promtool check metrics", async () => {
    await sql`INSERT INTO eventlane.relay_config (shard_count) VALUES (2)`.execute(db);
    // Shard 0 has a live leader at epoch 3; shard 1 has a row whose leader stopped heartbeating.
    await sql`INSERT INTO eventlane.relay_shards (shard, epoch, owner, heartbeat_at)
              VALUES (0, 3, 'relay-a', now()), (1, 7, 'relay-b', now() - interval '5 minutes')`.execute(db);
    const keys = ["order-1", "order-2", "order-3", "order-4", "order-5", "order-6", "order-7"];
    for (const key of keys) await store.enqueue(db, OrderPlaced, { orderId: key, secretNote: `payload-of-${key}` });
    // One row of order-1 dead-lettered and its key parked; order-2's row published.
    const deadId = (await sql<{ id: string }>`SELECT id FROM eventlane.outbox WHERE key = 'order-1'`.execute(db))
      .rows[0]?.id;
    await sql`UPDATE eventlane.outbox SET status = 'dead_lettered' WHERE id = ${deadId}`.execute(db);
    await sql`INSERT INTO eventlane.parked_keys (topic, key, outbox_id, reason) VALUES ('shop.orders', 'order-1', ${deadId}, 'record too large')`.execute(
      db,
    );
    await sql`UPDATE eventlane.outbox SET status = 'published' WHERE key = 'order-2'`.execute(db);
    // order-3's row is two minutes old: its shard lags about 120 s.
    await sql`UPDATE eventlane.outbox SET created_at = clock_timestamp() - interval '120 seconds' WHERE key = 'order-3'`.execute(
      db,
    );

    const pendingKeys = keys.filter((k) => k !== "order-1" && k !== "order-2");
    const expected = [0, 1].map((shard) => pendingKeys.filter((k) => shardOf(k, 2) === shard).length);
    const laggingShard = shardOf("order-3", 2);

    await start();
    const { res, samples } = await scrape();
    expect(res.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect(sampleValue(samples, "eventlane_backlog_up")).toBe(1);
    expect(sampleValue(samples, "eventlane_outbox_shards")).toBe(2);
    expect(sampleValue(samples, "eventlane_outbox_pending_rows", { shard: "0" })).toBe(expected[0]);
    expect(sampleValue(samples, "eventlane_outbox_pending_rows", { shard: "1" })).toBe(expected[1]);
    const lag = sampleValue(samples, "eventlane_outbox_lag_seconds", { shard: String(laggingShard) }) ?? -1;
    expect(lag).toBeGreaterThanOrEqual(120);
    expect(lag).toBeLessThan(150);
    const otherLag = sampleValue(samples, "eventlane_outbox_lag_seconds", { shard: String(1 - laggingShard) }) ?? -1;
    expect(otherLag).toBeLessThan(60);
    expect(sampleValue(samples, "eventlane_outbox_dead_letter_rows")).toBe(1);
    expect(sampleValue(samples, "eventlane_outbox_parked_keys")).toBe(1);
    expect(sampleValue(samples, "eventlane_relay_shards_without_leader")).toBe(1);
    const staleAge = sampleValue(samples, "eventlane_relay_shard_heartbeat_age_seconds", { shard: "1" }) ?? 0;
    expect(staleAge).toBeGreaterThanOrEqual(300);
    expect(sampleValue(samples, "eventlane_notify_queue_usage_ratio")).toBe(0);

    // Nothing identifying leaks: no key, no payload, no database name or connection string.
    for (const secret of ["order-", "payload-of", "record too large", tdb.name, "postgres://", "relay-a"]) {
      expect(res.body).not.toContain(secret);
    }

    const check = await promtool(["check", "metrics"], res.body);
    expect(check.output).toBe("");
    expect(check.code).toBe(0);
  });

  it("counts a shard with no relay_shards row as leaderless and reports no lag when nothing is pending", async () => {
    await start();
    const { samples } = await scrape();
    expect(sampleValue(samples, "eventlane_outbox_shards")).toBe(1);
    expect(sampleValue(samples, "eventlane_outbox_pending_rows", { shard: "0" })).toBe(0);
    expect(sampleValue(samples, "eventlane_outbox_lag_seconds", { shard: "0" })).toBe(0);
    expect(sampleValue(samples, "eventlane_relay_shards_without_leader")).toBe(1);
    expect(sampleValue(samples, "eventlane_relay_shard_heartbeat_age_seconds", { shard: "0" })).toBeUndefined();
  });

  it("runs the backlog statement once per cache period however many scrapes arrive", async () => {
    const logged = kyselyFor(tdb.url);
    let statements = 0;
    const counting = logged.db.withPlugin({
      transformQuery: (args) => {
        if (JSON.stringify(args.node).includes("pg_notification_queue_usage")) statements++;
        return args.node;
      },
      transformResult: async (args) => args.result,
    });
    try {
      await start({ db: counting, backlog: { cacheTtlMs: 700 } });
      await store.enqueue(db, OrderPlaced, { orderId: "c-1", secretNote: "x" });
      const results = await Promise.all(Array.from({ length: 20 }, () => scrape()));
      expect(statements).toBe(1);
      for (const { samples } of results)
        expect(sampleValue(samples, "eventlane_outbox_pending_rows", { shard: "0" })).toBe(1);

      // A write within the cache period is not seen yet; after it, it is.
      await store.enqueue(db, OrderPlaced, { orderId: "c-2", secretNote: "x" });
      expect(sampleValue((await scrape()).samples, "eventlane_outbox_pending_rows", { shard: "0" })).toBe(1);
      expect(statements).toBe(1);
      await new Promise((r) => setTimeout(r, 750));
      expect(sampleValue((await scrape()).samples, "eventlane_outbox_pending_rows", { shard: "0" })).toBe(2);
      expect(statements).toBe(2);
    } finally {
      await logged.db.destroy();
    }
  });
});

describe("/metrics exposition", () => {
  it("serves OpenMetrics when the scraper asks for it, without changing the text format afterwards", async () => {
    const relay = new FakeRelay();
    await start({ relay });
    relay.emit("batch:published", {
      shard: 0,
      epoch: 1,
      count: 2,
      byTopic: { t: 2 },
      durationMs: 5,
      commitToPublishMs: [3, 4],
    });
    const om = await app.inject({
      method: "GET",
      url: "/metrics",
      headers: { accept: "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5" },
    });
    expect(om.headers["content-type"]).toBe("application/openmetrics-text; version=1.0.0; charset=utf-8");
    expect(om.body).toContain("# TYPE eventlane_relay_published counter");
    expect(om.body).toContain('eventlane_relay_published_total{topic="t"} 2');
    expect(om.body.endsWith("# EOF\n")).toBe(true);

    const { res } = await scrape();
    expect(res.body).toContain("# TYPE eventlane_relay_published_total counter");
    expect(res.body).not.toContain("# EOF");
    expect((await promtool(["check", "metrics"], res.body)).code).toBe(0);
  });

  it("adds its metrics to the caller's registry and removes them on close", async () => {
    const registry = new Registry();
    const own = new Counter({ name: "shop_checkouts_total", help: "Checkouts.", registers: [registry] });
    own.inc(3);
    await start({ metrics: { registry } });
    const { samples } = await scrape();
    expect(sampleValue(samples, "shop_checkouts_total")).toBe(3);
    expect(sampleValue(samples, "eventlane_backlog_up")).toBe(1);
    expect(app.eventlane.registry).toBe(registry);
    await app.close();
    expect(registry.getMetricsAsArray().map((m) => m.name)).toEqual(["shop_checkouts_total"]);

    // The same registry serves a fresh instance again.
    app = Fastify();
    await start({ metrics: { registry } });
    expect(sampleValue((await scrape()).samples, "eventlane_backlog_up")).toBe(1);
  });

  it("puts /metrics and the status route behind the caller's onRequest hooks", async () => {
    await start({
      metrics: {
        onRequest: async (request, reply) => {
          if (request.headers.authorization !== "Bearer scrape") await reply.code(401).send({ error: "unauthorized" });
        },
      },
      status: {
        onRequest: async (_request, reply) => {
          await reply.code(403).send({ error: "forbidden" });
        },
      },
    });
    expect((await app.inject({ method: "GET", url: "/metrics" })).statusCode).toBe(401);
    expect(
      (await app.inject({ method: "GET", url: "/metrics", headers: { authorization: "Bearer scrape" } })).statusCode,
    ).toBe(200);
    expect((await app.inject({ method: "GET", url: "/eventlane/status" })).statusCode).toBe(403);
    // Probes stay open.
    expect((await app.inject({ method: "GET", url: "/health/ready" })).statusCode).toBe(200);
  });
});

describe("per-instance relay metrics", () => {
  it("follow the relay's events and status, and stop listening on close", async () => {
    const relay = new FakeRelay();
    relay.current = {
      instanceId: "relay-host-1",
      running: true,
      producerConnected: true,
      shards: [
        { shard: 0, leader: true, epoch: 4, lastHeartbeatAt: new Date() },
        { shard: 1, leader: false, epoch: 9, lastHeartbeatAt: null },
      ],
    };
    await start({ relay });
    relay.emit("leader:acquired", { shard: 0, epoch: 4 });
    relay.emit("batch:published", {
      shard: 0,
      epoch: 4,
      count: 5,
      byTopic: { "shop.orders": 3, "shop.refunds": 2 },
      durationMs: 40,
      commitToPublishMs: [10, 2000, 700_000],
    });
    relay.emit("publish:failed", {
      shard: 0,
      reason: "connection",
      backoffMs: 100,
      error: new Error("ECONNREFUSED secret-host"),
    });
    relay.emit("publish:failed", { shard: 0, reason: "made-up" as "unknown", backoffMs: 100, error: null });
    relay.emit("record:failed", { shard: 0, outboxId: "17", topic: "shop.orders", attempts: 1, reason: "too large" });
    relay.emit("dead-lettered", { shard: 0, outboxId: "17", topic: "shop.orders", reason: "too large" });
    relay.emit("key:parked", { topic: "shop.orders", outboxId: "17" });
    relay.emit("key:skipped", { topic: "shop.orders", outboxId: "17" });
    relay.emit("error", { error: new Error("boom") });

    const { res, samples } = await scrape();
    expect(sampleValue(samples, "eventlane_relay_running")).toBe(1);
    expect(sampleValue(samples, "eventlane_relay_producer_connected")).toBe(1);
    expect(sampleValue(samples, "eventlane_relay_leader", { shard: "0" })).toBe(1);
    expect(sampleValue(samples, "eventlane_relay_leader", { shard: "1" })).toBe(0);
    expect(sampleValue(samples, "eventlane_relay_epoch", { shard: "0" })).toBe(4);
    expect(sampleValue(samples, "eventlane_relay_epoch", { shard: "1" })).toBe(9);
    expect(sampleValue(samples, "eventlane_relay_published_total", { topic: "shop.orders" })).toBe(3);
    expect(sampleValue(samples, "eventlane_relay_published_total", { topic: "shop.refunds" })).toBe(2);
    expect(sampleValue(samples, "eventlane_relay_publish_errors_total", { reason: "connection" })).toBe(1);
    expect(sampleValue(samples, "eventlane_relay_publish_errors_total", { reason: "unknown" })).toBe(1);
    expect(sampleValue(samples, "eventlane_relay_publish_errors_total", { reason: "throttling" })).toBe(0);
    expect(sampleValue(samples, "eventlane_relay_record_failures_total", { topic: "shop.orders" })).toBe(1);
    expect(sampleValue(samples, "eventlane_relay_dead_lettered_total", { topic: "shop.orders" })).toBe(1);
    expect(sampleValue(samples, "eventlane_relay_key_actions_total", { topic: "shop.orders", action: "parked" })).toBe(
      1,
    );
    expect(sampleValue(samples, "eventlane_relay_key_actions_total", { topic: "shop.orders", action: "skipped" })).toBe(
      1,
    );
    expect(sampleValue(samples, "eventlane_relay_leadership_changes_total", { change: "acquired" })).toBe(1);
    expect(sampleValue(samples, "eventlane_relay_errors_total")).toBe(1);
    expect(sampleValue(samples, "eventlane_relay_batch_duration_seconds_count")).toBe(1);
    expect(sampleValue(samples, "eventlane_relay_batch_duration_seconds_sum")).toBeCloseTo(0.04);
    expect(sampleValue(samples, "eventlane_relay_batch_duration_seconds_bucket", { le: "0.05" })).toBe(1);
    expect(sampleValue(samples, "eventlane_relay_batch_duration_seconds_bucket", { le: "0.025" })).toBe(0);
    expect(sampleValue(samples, "eventlane_commit_to_publish_seconds_count")).toBe(3);
    expect(sampleValue(samples, "eventlane_commit_to_publish_seconds_bucket", { le: "0.01" })).toBe(1);
    expect(sampleValue(samples, "eventlane_commit_to_publish_seconds_bucket", { le: "2.5" })).toBe(2);
    expect(sampleValue(samples, "eventlane_commit_to_publish_seconds_bucket", { le: "600" })).toBe(2);
    expect(sampleValue(samples, "eventlane_commit_to_publish_seconds_bucket", { le: "+Inf" })).toBe(3);
    for (const secret of ["secret-host", "too large", "boom", "relay-host-1"]) expect(res.body).not.toContain(secret);
    expect((await promtool(["check", "metrics"], res.body)).code).toBe(0);

    relay.current = { ...relay.current, running: false, producerConnected: false, shards: [] };
    const after = (await scrape()).samples;
    expect(sampleValue(after, "eventlane_relay_running")).toBe(0);
    expect(sampleValue(after, "eventlane_relay_producer_connected")).toBe(0);
    expect(sampleValue(after, "eventlane_relay_leader", { shard: "0" })).toBeUndefined();

    expect(relay.listenerCount()).toBe(12);
    await app.close();
    expect(relay.listenerCount()).toBe(0);
  });
});
