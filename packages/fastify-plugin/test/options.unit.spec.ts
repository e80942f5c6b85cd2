import { readFileSync } from "node:fs";
import { InvalidIdentifierError, InvalidOptionError } from "@eventlane/core";
import { Registry } from "@prometheus-io/client";
import Fastify from "fastify";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULTS, type EventlaneRelayHandle, eventlane, resolvePluginOptions } from "../src/index.ts";
import { PLUGIN_OPTION_PATHS } from "../src/options.ts";
import { FakeRelay, kyselyFor } from "./support.ts";

// A pool that is never used: option parsing needs a Kysely instance, not a database.
const { db } = kyselyFor("postgres://nobody@127.0.0.1:1/none");
afterAll(() => db.destroy());

/** The part of a consumer the plugin reads. */
const consumer = (groupId: string) => ({ options: { groupId }, stats: () => ({}), lag: () => [] });
const twice = consumer("email");

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
    expect(r.thresholds).toEqual({
      lagSeconds: 60,
      deadLetterRows: 0,
      parkedKeys: 0,
      notifyQueueUsageRatio: 0.5,
      consumerLagRecords: 10_000,
    });
    expect(r.consumers).toEqual([]);
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
    [{ db, backlog: { leaderStaleAfterMs: "30s" } }, "backlog.leaderStaleAfterMs"],
    [{ db, backlog: { leaderStaleAfterMs: 3_600_001 } }, "backlog.leaderStaleAfterMs"],
    [{ db, thresholds: { lagSeconds: Number.NaN } }, "thresholds.lagSeconds"],
    [{ db, thresholds: { notifyQueueUsageRatio: 2 } }, "thresholds.notifyQueueUsageRatio"],
    [{ db, thresholds: { deadLetterRows: 0.5 } }, "thresholds.deadLetterRows"],
    [{ db, thresholds: null }, "thresholds"],
    [{ db, metrics: { registry: {} } }, "metrics.registry"],
    [{ db, metrics: { onRequest: "auth" } }, "metrics.onRequest"],
    [{ db, metrics: { onRequest: [() => {}, 1] } }, "metrics.onRequest[1]"],
    [{ db, status: { onRequest: {} } }, "status.onRequest"],
    [{ db, relay: { status: () => ({}) } }, "relay"],
    [{ db, consumers: consumer("email") }, "consumers"],
    [{ db, consumers: [consumer("email"), { stats: () => ({}) }] }, "consumers[1]"],
    [{ db, consumers: [{ options: {}, stats: () => ({}), lag: () => [] }] }, "consumers[0].options.groupId"],
    [{ db, consumers: [{ stats: () => ({}), lag: () => [] }] }, "consumers[0].options.groupId"],
    [{ db, consumers: [consumer("")] }, "consumers[0].options.groupId"],
    [{ db, consumers: [twice, consumer("audit"), twice] }, "consumers[2]"],
    [{ db, thresholds: { consumerLagRecords: -1 } }, "thresholds.consumerLagRecords"],
    [{ db, store: 42 }, "store"],
    [{ db, store: { notfiy: false } }, "store.notfiy"],
    [{ db, store: { schema: "a" }, schema: "b" }, "schema"],
    [{ db, store: { tablePrefix: "a_" }, tablePrefix: "" }, "tablePrefix"],
  ])("rejects %j naming %s", (options, option) => {
    const error = optionError(() => resolvePluginOptions(options));
    expect(error.code).toBe("EVENTLANE_INVALID_OPTION");
    expect(error.option).toBe(option);
    expect(error.message).toContain(option);
  });

  it.each([
    [{ db, schema: "Bad-Name" }, "schema", "Bad-Name"],
    [{ db, schema: "" }, "schema", ""],
    [{ db, tablePrefix: 7 }, "tablePrefix", "7"],
    [{ db, tablePrefix: "el-" }, "tablePrefix", "el-"],
    // Checked as an identifier before it is compared with the store's.
    [{ db, store: { schema: "a" }, schema: "Bad-Name" }, "schema", "Bad-Name"],
    [{ db, store: { schema: "Bad-Name" } }, "store.schema", "Bad-Name"],
    [{ db, store: { tablePrefix: "X" } }, "store.tablePrefix", "X"],
  ])("rejects the SQL identifier in %j as core does, naming %s", (options, option, value) => {
    let error: unknown;
    try {
      resolvePluginOptions(options);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidIdentifierError);
    expect(error).toMatchObject({ code: "EVENTLANE_INVALID_IDENTIFIER", option, value });
    expect((error as Error).message).toContain(option);
  });

  it("accepts schema and tablePrefix that repeat the store's", () => {
    const r = resolvePluginOptions({ db, store: { schema: "billing" }, schema: "billing", tablePrefix: "" });
    expect(r.names.outbox).toBe('"billing"."outbox"');
  });

  it("names the unknown option and the known ones", () => {
    const error = optionError(() => resolvePluginOptions({ db, shema: "x" }));
    expect(error.option).toBe("shema");
    expect(error.message).toContain("schema");
  });

  it("never echoes a handle option's content", () => {
    const error = optionError(() => resolvePluginOptions({ db: "postgres://app:s3cret@db.internal/app" }));
    expect(error.option).toBe("db");
    expect(error.message).not.toContain("s3cret");
  });

  it("keeps the consumers it is given, in order, frozen", () => {
    const email = consumer("email");
    const audit = consumer("audit");
    const r = resolvePluginOptions({ db, consumers: [email, audit], thresholds: { consumerLagRecords: 500 } });
    expect(r.consumers).toEqual([email, audit]);
    expect(r.consumers[0]).toBe(email);
    expect(Object.isFrozen(r.consumers)).toBe(true);
    expect(r.thresholds.consumerLagRecords).toBe(500);
  });

  it("accepts Fastify's own register options", () => {
    expect(() => resolvePluginOptions({ db, logLevel: "warn" })).not.toThrow();
  });
});

describe("DEFAULTS", () => {
  it("is frozen all the way down", () => {
    expect(Object.isFrozen(DEFAULTS)).toBe(true);
    for (const section of [DEFAULTS.routes, DEFAULTS.readiness, DEFAULTS.backlog, DEFAULTS.thresholds]) {
      expect(Object.isFrozen(section)).toBe(true);
    }
  });

  it("is what resolvePluginOptions fills in", () => {
    const r = resolvePluginOptions({ db });
    expect(r.routes).toEqual(DEFAULTS.routes);
    expect(r.readiness).toEqual(DEFAULTS.readiness);
    expect(r.backlog).toEqual(DEFAULTS.backlog);
    expect(r.thresholds).toEqual(DEFAULTS.thresholds);
  });
});

describe("the README's option table", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  // The "## Options" section only: the metric tables below it have rows of the same shape.
  const section = readme.slice(readme.indexOf("\n## Options\n"), readme.indexOf("\n## Routes\n"));
  const rows = new Map(
    [...section.matchAll(/^\| `([\w.]+)` +\| ([^|]+?) +\|/gm)].map((m) => [m[1] as string, (m[2] as string).trim()]),
  );
  /** DEFAULTS as `path -> value`, e.g. `backlog.timeoutMs -> 3000`. */
  const defaults = new Map(
    Object.entries(DEFAULTS).flatMap(([key, value]) =>
      typeof value === "object"
        ? Object.entries(value).map(([inner, v]): [string, unknown] => [`${key}.${inner}`, v])
        : [[key, value] as [string, unknown]],
    ),
  );

  it("gives every default as DEFAULTS has it", () => {
    expect(defaults.size).toBeGreaterThan(10);
    for (const [path, value] of defaults) {
      const cell = rows.get(path);
      expect(cell, `README row for ${path}`).toBeDefined();
      expect(cell, path).toBe(typeof value === "string" ? `\`"${value}"\`` : `\`${String(value)}\``);
    }
  });

  it("gives no literal default that DEFAULTS does not have", () => {
    for (const [path, cell] of rows) {
      if (cell.startsWith("`")) expect(defaults.has(path), `README default of ${path}`).toBe(true);
    }
  });

  it("has one row for every option the plugin takes, and none for another", () => {
    expect([...rows.keys()].sort()).toEqual([...PLUGIN_OPTION_PATHS].sort());
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

  it("refuses a relay whose on() returns no unsubscribe function, and leaves the registry as it was", async () => {
    const app = Fastify();
    try {
      const registry = new Registry();
      const status = new FakeRelay().status();
      // An EventEmitter's on() returns the emitter itself.
      const emitterLike = {
        status: () => status,
        on(): unknown {
          return this;
        },
      };
      app.register(eventlane, { db, relay: emitterLike as unknown as EventlaneRelayHandle, metrics: { registry } });
      const error = await app.ready().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(InvalidOptionError);
      expect((error as InvalidOptionError).option).toBe("relay");
      expect(registry.getMetricsAsArray()).toHaveLength(0);
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
