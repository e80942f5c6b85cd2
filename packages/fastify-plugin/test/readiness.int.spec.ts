import { type FaultProxy, startFaultProxy } from "@eventlane/test-kit";
import Fastify, { type FastifyInstance } from "fastify";
import type { Kysely } from "kysely";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { TestDatabase } from "@eventlane/test-kit";
import { eventlane, type ReadinessReport } from "../src/index.ts";
import { FakeRelay, kyselyFor, migratedDatabase, parseSamples, sampleValue } from "./support.ts";

let tdb: TestDatabase;
let closeDb: () => Promise<void>;
let app: FastifyInstance;
let proxy: FaultProxy;
let viaProxy: Kysely<unknown>;

beforeAll(async () => {
  ({ tdb, close: closeDb } = await migratedDatabase());
});
afterAll(() => closeDb());
beforeEach(async () => {
  proxy = await startFaultProxy({ host: "127.0.0.1", port: 5432 });
  viaProxy = kyselyFor(tdb.urlVia("127.0.0.1", proxy.port)).db;
  app = Fastify();
});
afterEach(async () => {
  await app.close();
  // Cut the blackholed connections first so the pool can end.
  await proxy.close();
  await viaProxy.destroy();
});

async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - started };
}

describe("readiness", () => {
  it("is 200 with every check named while the database answers", async () => {
    await app.register(eventlane, { db: viaProxy });
    const res = await app.inject({ method: "GET", url: "/health/ready" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["cache-control"]).toBe("no-store");
    const body = res.json<ReadinessReport>();
    expect(body.status).toBe("ready");
    expect(body.failed).toEqual([]);
    expect(body.checks.database).toMatchObject({ status: "ok", timeoutMs: 2000 });
    expect(body.checks.producer).toBeUndefined();
  });

  it("turns 503 within its timeout when the database connection is blackholed, and back to 200 once healed", async () => {
    const timeoutMs = 500;
    await app.register(eventlane, { db: viaProxy, readiness: { timeoutMs }, backlog: { timeoutMs: 700 } });
    expect((await app.inject({ method: "GET", url: "/health/ready" })).statusCode).toBe(200);

    proxy.blackhole();
    const first = await timed(() => app.inject({ method: "GET", url: "/health/ready" }));
    expect(first.value.statusCode).toBe(503);
    expect(first.ms).toBeGreaterThanOrEqual(timeoutMs - 20);
    expect(first.ms).toBeLessThan(timeoutMs + 500);
    const body = first.value.json<ReadinessReport>();
    expect(body).toMatchObject({
      status: "not_ready",
      failed: ["database"],
      checks: { database: { status: "fail", reason: "timeout", timeoutMs } },
    });
    console.log(`readiness 503 body: ${first.value.body}`);

    // Probes keep answering within the bound while the partition lasts; liveness is unaffected.
    const probes = await timed(() =>
      Promise.all([1, 2, 3].map(() => app.inject({ method: "GET", url: "/health/ready" }))),
    );
    expect(probes.value.map((r) => r.statusCode)).toEqual([503, 503, 503]);
    expect(probes.ms).toBeLessThan(timeoutMs + 500);
    const live = await timed(() => app.inject({ method: "GET", url: "/health/live" }));
    expect(live.value.statusCode).toBe(200);
    expect(live.ms).toBeLessThan(100);

    // /metrics and the status route are bounded too: the backlog is reported unavailable.
    const metrics = await timed(() => app.inject({ method: "GET", url: "/metrics" }));
    expect(metrics.value.statusCode).toBe(200);
    expect(metrics.ms).toBeLessThan(700 + 500);
    const samples = parseSamples(metrics.value.body);
    expect(sampleValue(samples, "eventlane_backlog_up")).toBe(0);
    expect(samples.some((s) => s.name === "eventlane_outbox_lag_seconds")).toBe(false);
    const status = await app.inject({ method: "GET", url: "/eventlane/status" });
    expect(status.statusCode).toBe(503);
    expect(status.json()).toMatchObject({ status: "unknown", backlog: { available: false, reason: "timeout" } });
    expect(status.body).not.toContain(tdb.name);

    proxy.heal();
    // The hung ping is abandoned, not joined: a new connection answers.
    const healed = await app.inject({ method: "GET", url: "/health/ready" });
    expect(healed.statusCode).toBe(200);
  });

  it("turns 503 naming the error when the database refuses connections", async () => {
    await app.register(eventlane, { db: viaProxy, readiness: { timeoutMs: 1000 } });
    proxy.refuse();
    const res = await timed(() => app.inject({ method: "GET", url: "/health/ready" }));
    expect(res.value.statusCode).toBe(503);
    expect(res.ms).toBeLessThan(1500);
    const body = res.value.json<ReadinessReport>();
    expect(body.failed).toEqual(["database"]);
    expect(body.checks.database?.status).toBe("fail");
    expect(body.checks.database?.reason).toBe("error");
    expect(res.value.body).not.toContain("127.0.0.1");
  });

  it("turns 503 when the relay in this process has no producer connection, and 200 when it reconnects", async () => {
    const relay = new FakeRelay();
    relay.current = { ...relay.current, producerConnected: false };
    await app.register(eventlane, { db: viaProxy, relay });
    const down = await app.inject({ method: "GET", url: "/health/ready" });
    expect(down.statusCode).toBe(503);
    expect(down.json()).toMatchObject({
      status: "not_ready",
      failed: ["producer"],
      checks: {
        database: { status: "ok" },
        relay: { status: "ok" },
        producer: { status: "fail", reason: "disconnected" },
      },
    });
    relay.current = { ...relay.current, producerConnected: true };
    expect((await app.inject({ method: "GET", url: "/health/ready" })).statusCode).toBe(200);
    relay.current = { ...relay.current, running: false };
    const stopped = await app.inject({ method: "GET", url: "/health/ready" });
    expect(stopped.statusCode).toBe(503);
    expect(stopped.json<ReadinessReport>().failed).toEqual(["relay"]);
  });
});
