import { InvalidOptionError } from "@eventlane/core";
import { Registry } from "@prometheus-io/client";
import Fastify from "fastify";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULTS, eventlane, resolvePluginOptions } from "../src/index.ts";
import { kyselyFor } from "./support.ts";

// A pool that is never used: option parsing needs a Kysely instance, not a database.
const { db } = kyselyFor("postgres://nobody@127.0.0.1:1/none");
afterAll(() => db.destroy());

function optionError(fn: () => unknown): InvalidOptionError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidOptionError);
    return error as InvalidOptionError;
  }
  throw new Error("expected an InvalidOptionError");
}

describe("resolvePluginOptions", () => {
  it("fills every default and freezes the result", () => {
    const r = resolvePluginOptions({ db });
    expect(r.routes).toEqual({
      liveness: "/health/live",
      readiness: "/health/ready",
      status: "/eventlane/status",
      metrics: "/metrics",
    });
    expect(r.readiness.timeoutMs).toBe(DEFAULTS.readiness.timeoutMs);
    expect(r.backlog).toEqual({ cacheTtlMs: 2000, timeoutMs: 3000, leaderStaleAfterMs: 30_000 });
    expect(r.thresholds).toEqual({ lagSeconds: 60, deadLetterRows: 0, parkedKeys: 0, notifyQueueUsageRatio: 0.5 });
    expect(r.names.outbox).toBe('"eventlane"."outbox"');
    expect(r.store).toBeUndefined();
    expect(Object.isFrozen(r)).toBe(true);
    expect(Object.isFrozen(r.backlog)).toBe(true);
  });

  it("applies routePrefix to every route and leaves out routes set to false", () => {
    const r = resolvePluginOptions({ db, routePrefix: "/internal", routes: { status: false, metrics: "/prom" } });
    expect(r.routes).toEqual({
      liveness: "/internal/health/live",
      readiness: "/internal/health/ready",
      status: false,
      metrics: "/internal/prom",
    });
  });

  it("takes the table names from a store given as options", () => {
    const r = resolvePluginOptions({ db, store: { schema: "billing", tablePrefix: "el_" } });
    expect(r.names.outbox).toBe('"billing"."el_outbox"');
    expect(typeof r.store?.enqueue).toBe("function");
  });

  it.each([
    [{}, "db"],
    [{ db: {} }, "db"],
    [{ db, colour: "blue" }, "colour"],
    [{ db, prefix: "/x" }, "prefix"],
    [{ db, routePrefix: "internal" }, "routePrefix"],
    [{ db, routePrefix: "/internal/" }, "routePrefix"],
    [{ db, routes: { readyness: "/r" } }, "routes.readyness"],
    [{ db, routes: { metrics: "metrics" } }, "routes.metrics"],
    [{ db, routes: { metrics: "/health/live" } }, "routes"],
    [{ db, readiness: { timeoutMs: "1s" } }, "readiness.timeoutMs"],
    [{ db, readiness: { timeoutMs: 0 } }, "readiness.timeoutMs"],
    [{ db, readiness: 5 }, "readiness"],
    [{ db, backlog: { cacheTtlMs: -1 } }, "backlog.cacheTtlMs"],
    [{ db, backlog: { timeoutMs: 1.5 } }, "backlog.timeoutMs"],
    [{ db, backlog: { leaderStaleAfterMs: null } }, "backlog.leaderStaleAfterMs"],
    [{ db, thresholds: { lagSeconds: Number.NaN } }, "thresholds.lagSeconds"],
    [{ db, thresholds: { notifyQueueUsageRatio: 2 } }, "thresholds.notifyQueueUsageRatio"],
    [{ db, metrics: { registry: {} } }, "metrics.registry"],
    [{ db, metrics: { onRequest: "auth" } }, "metrics.onRequest"],
    [{ db, metrics: { onRequest: [() => {}, 1] } }, "metrics.onRequest[1]"],
    [{ db, status: { onRequest: {} } }, "status.onRequest"],
    [{ db, relay: { status: () => ({}) } }, "relay"],
    [{ db, store: 42 }, "store"],
    [{ db, store: { notfiy: false } }, "store.notfiy"],
    [{ db, schema: "Bad-Name" }, "schema"],
    [{ db, tablePrefix: 7 }, "tablePrefix"],
    [{ db, store: { schema: "a" }, schema: "b" }, "schema"],
  ])("rejects %j naming %s", (options, option) => {
    const error = optionError(() => resolvePluginOptions(options));
    expect(error.code).toBe("EVENTLANE_INVALID_OPTION");
    expect(error.option).toBe(option);
    expect(error.message).toContain(option);
  });

  it("accepts Fastify's own register options", () => {
    expect(() => resolvePluginOptions({ db, logLevel: "warn" })).not.toThrow();
  });
});

describe("registration", () => {
  it("fails with a typed error naming the option, and registers nothing", async () => {
    const app = Fastify();
    try {
      const registry = new Registry();
      app.register(eventlane, { db, metrics: { registry }, backlog: { timeoutMs: -5 } });
      const error = await app.ready().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InvalidOptionError);
      expect((error as InvalidOptionError).code).toBe("EVENTLANE_INVALID_OPTION");
      expect((error as InvalidOptionError).option).toBe("backlog.timeoutMs");
      expect(registry.getMetricsAsArray()).toHaveLength(0);
    } finally {
      await app.close();
    }
  });

  it("decorates the instance and adds the routes under the prefix", async () => {
    const app = Fastify();
    try {
      await app.register(eventlane, { db, routePrefix: "/ops", store: {} });
      await app.ready();
      expect(app.eventlane.db).toBe(db);
      expect(typeof app.eventlane.store?.appendToStream).toBe("function");
      expect(app.eventlane.relay).toBeUndefined();
      expect(app.hasRoute({ method: "GET", url: "/ops/health/live" })).toBe(true);
      expect(app.hasRoute({ method: "GET", url: "/ops/health/ready" })).toBe(true);
      expect(app.hasRoute({ method: "GET", url: "/ops/eventlane/status" })).toBe(true);
      expect(app.hasRoute({ method: "GET", url: "/ops/metrics" })).toBe(true);
      const live = await app.inject({ method: "GET", url: "/ops/health/live" });
      expect(live.statusCode).toBe(200);
      expect(live.json()).toEqual({ status: "alive" });
    } finally {
      await app.close();
    }
  });

  it("refuses a second registration on the same instance", async () => {
    const app = Fastify();
    try {
      app.register(eventlane, { db });
      app.register(eventlane, { db });
      await expect(app.ready()).rejects.toThrow();
    } finally {
      await app.close();
    }
  });
});
