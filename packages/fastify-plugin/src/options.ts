import {
  type Executor,
  createEventStore,
  type EventStore,
  type EventStoreOptions,
  InvalidOptionError,
  resolveTableNames,
  type TableNames,
} from "@eventlane/core";
import type { Registry } from "@prometheus-io/client";
import type { onRequestHookHandler } from "fastify";
import type { Kysely } from "kysely";
import type { EventlaneRelayHandle } from "./relay-handle.ts";
import type { ResolvedStatusThresholds } from "./status/status-report.ts";

/** Paths of the plugin's routes, relative to `routePrefix`; `false` leaves a route out. */
export interface EventlaneRoutesOptions {
  /** @default "/health/live" */
  readonly liveness?: string | false;
  /** @default "/health/ready" */
  readonly readiness?: string | false;
  /** @default "/eventlane/status" */
  readonly status?: string | false;
  /** @default "/metrics" */
  readonly metrics?: string | false;
}

export interface EventlaneReadinessOptions {
  /**
   * How long readiness waits for the database to answer `SELECT 1`, in milliseconds. Keep it below
   * the orchestrator's probe timeout (Kubernetes `timeoutSeconds`).
   * @default 2000
   */
  readonly timeoutMs?: number;
}

export interface EventlaneBacklogOptions {
  /**
   * How long a backlog reading (or a failure to read it) is served from cache, in milliseconds.
   * Each replica runs the backlog statement at most once per period, whatever the scrape rate.
   * @default 2000
   */
  readonly cacheTtlMs?: number;
  /**
   * Bound of one backlog reading, in milliseconds: the statement runs under this
   * `statement_timeout` and the scrape stops waiting after it. Keep it below Prometheus's
   * `scrape_timeout` (10 s by default).
   * @default 3000
   */
  readonly timeoutMs?: number;
  /**
   * A shard whose row has not been heartbeated for this long counts as having no leader, in
   * milliseconds. Set it above the relay's lease.
   * @default 30000
   */
  readonly leaderStaleAfterMs?: number;
}

/** When the status route's conditions fire (value strictly over the threshold). */
export interface EventlaneThresholdsOptions {
  /** @default 60 */
  readonly lagSeconds?: number;
  /** @default 0 */
  readonly deadLetterRows?: number;
  /** @default 0 */
  readonly parkedKeys?: number;
  /** @default 0.5 */
  readonly notifyQueueUsageRatio?: number;
}

/** A Fastify `onRequest` hook, or several, run before the route's handler (for auth). */
export type EventlaneRouteHook = onRequestHookHandler | readonly onRequestHookHandler[];

export interface EventlaneMetricsOptions {
  /**
   * The registry the plugin's metrics are added to and `/metrics` serves (with everything else in
   * it). The plugin removes its metrics from it in `onClose`.
   * @default a new Registry owned by the plugin
   */
  readonly registry?: Registry;
  /** `onRequest` hook(s) for `/metrics`, e.g. your own auth check. @default none */
  readonly onRequest?: EventlaneRouteHook;
}

export interface EventlaneStatusOptions {
  /** `onRequest` hook(s) for the status route. @default none */
  readonly onRequest?: EventlaneRouteHook;
}

/** Options of the Fastify plugin. Only `db` is required. */
export interface EventlanePluginOptions {
  /**
   * Your Kysely instance, whatever its database type. The plugin runs its health and backlog queries
   * on it and never closes it.
   */
  readonly db: Executor;
  /**
   * The event store to decorate `fastify.eventlane.store` with: an `EventStore`, or its options (the
   * plugin then calls `createEventStore`). @default none (`store` is undefined)
   */
  readonly store?: EventStore | EventStoreOptions;
  /**
   * The relay running in this process (`createRelay(...)` from `@eventlane/relay`). Adds the
   * relay and producer checks to readiness and the per-instance relay metrics. @default none
   */
  readonly relay?: EventlaneRelayHandle;
  /** Schema of Eventlane's tables. @default the store's, else "eventlane" */
  readonly schema?: string;
  /** Table-name prefix. @default the store's, else "" */
  readonly tablePrefix?: string;
  /** Prefix of every route of the plugin, e.g. "/internal". @default "" */
  readonly routePrefix?: string;
  readonly routes?: EventlaneRoutesOptions;
  readonly readiness?: EventlaneReadinessOptions;
  readonly backlog?: EventlaneBacklogOptions;
  readonly thresholds?: EventlaneThresholdsOptions;
  readonly metrics?: EventlaneMetricsOptions;
  readonly status?: EventlaneStatusOptions;
}

/** {@link EventlanePluginOptions} validated, defaulted and frozen. */
export interface ResolvedEventlanePluginOptions {
  readonly db: Kysely<unknown>;
  readonly store: EventStore | undefined;
  readonly relay: EventlaneRelayHandle | undefined;
  readonly names: TableNames;
  readonly routes: {
    readonly liveness: string | false;
    readonly readiness: string | false;
    readonly status: string | false;
    readonly metrics: string | false;
  };
  readonly readiness: { readonly timeoutMs: number };
  readonly backlog: { readonly cacheTtlMs: number; readonly timeoutMs: number; readonly leaderStaleAfterMs: number };
  readonly thresholds: ResolvedStatusThresholds;
  readonly metrics: { readonly registry: Registry | undefined; readonly onRequest: readonly onRequestHookHandler[] };
  readonly status: { readonly onRequest: readonly onRequestHookHandler[] };
}

/** Every default in one place. */
export const DEFAULTS = Object.freeze({
  routePrefix: "",
  routes: Object.freeze({
    liveness: "/health/live",
    readiness: "/health/ready",
    status: "/eventlane/status",
    metrics: "/metrics",
  }),
  readiness: Object.freeze({ timeoutMs: 2000 }),
  backlog: Object.freeze({ cacheTtlMs: 2000, timeoutMs: 3000, leaderStaleAfterMs: 30_000 }),
  thresholds: Object.freeze({ lagSeconds: 60, deadLetterRows: 0, parkedKeys: 0, notifyQueueUsageRatio: 0.5 }),
});

/** Options Fastify's `register` itself understands; they reach the plugin too and are ignored. */
const FASTIFY_REGISTER_KEYS = new Set(["logLevel", "logSerializers"]);
const TOP_LEVEL = [
  "db",
  "store",
  "relay",
  "schema",
  "tablePrefix",
  "routePrefix",
  "routes",
  "readiness",
  "backlog",
  "thresholds",
  "metrics",
  "status",
] as const;

function fail(option: string, message: string): never {
  throw new InvalidOptionError({ option, message: `${option}: ${message}` });
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string")
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  if (typeof value === "number") return `the number ${value}`;
  return typeof value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function section(path: string, value: unknown, known: readonly string[]): Record<string, unknown> {
  if (value === undefined) return {};
  if (!isPlainObject(value)) fail(path, `must be an object; got ${describe(value)}`);
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) fail(`${path}.${key}`, `unknown option; known options of ${path}: ${known.join(", ")}`);
  }
  return value;
}

function integerMs(option: string, value: unknown, fallback: number, min = 1, max = 3_600_000): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    fail(option, `must be an integer number of milliseconds from ${min} to ${max}; got ${describe(value)}`);
  }
  return value;
}

function nonNegative(option: string, value: unknown, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > max) {
    fail(option, `must be a number from 0 to ${max}; got ${describe(value)}`);
  }
  return value;
}

const PATH_RE = /^\/[A-Za-z0-9._~\-/]*$/;

function routePath(option: string, value: unknown, fallback: string): string | false {
  if (value === undefined) return fallback;
  if (value === false) return false;
  if (typeof value !== "string" || !PATH_RE.test(value) || value.includes("//")) {
    fail(
      option,
      `must be a path starting with "/" (letters, digits, ".", "_", "~", "-", "/") or false; got ${describe(value)}`,
    );
  }
  return value;
}

function hooks(option: string, value: unknown): readonly onRequestHookHandler[] {
  if (value === undefined) return [];
  const list: unknown[] = Array.isArray(value) ? value : [value];
  list.forEach((hook, i) => {
    if (typeof hook !== "function") {
      fail(
        Array.isArray(value) ? `${option}[${i}]` : option,
        `must be a Fastify onRequest hook (a function); got ${describe(hook)}`,
      );
    }
  });
  return Object.freeze(list as onRequestHookHandler[]);
}

function hasMethods(value: unknown, methods: readonly string[]): boolean {
  return (
    typeof value === "object" &&
    value !== null &&
    methods.every((m) => typeof (value as Record<string, unknown>)[m] === "function")
  );
}

function joinPath(prefix: string, path: string | false): string | false {
  if (path === false) return false;
  return prefix === "" ? path : `${prefix}${path === "/" ? "" : path}`;
}

/**
 * Validates and resolves the plugin's options once. Throws `InvalidOptionError`
 * (`code: "EVENTLANE_INVALID_OPTION"`) whose `option` names the offending option by its path.
 */
export function resolvePluginOptions(options: unknown): ResolvedEventlanePluginOptions {
  if (!isPlainObject(options)) fail("options", `must be an object; got ${describe(options)}`);
  for (const key of Object.keys(options)) {
    if (key === "prefix") {
      fail(
        "prefix",
        "Fastify's register prefix does not apply to this plugin (it is not encapsulated); use routePrefix",
      );
    }
    if (!(TOP_LEVEL as readonly string[]).includes(key) && !FASTIFY_REGISTER_KEYS.has(key)) {
      fail(key, `unknown option; known options: ${TOP_LEVEL.join(", ")}`);
    }
  }

  const db = options.db;
  if (!hasMethods(db, ["selectFrom", "transaction", "getExecutor"])) {
    fail("db", `must be a Kysely instance; got ${describe(db)}`);
  }

  let store: EventStore | undefined;
  if (options.store !== undefined) {
    if (hasMethods(options.store, ["appendToStream", "readStream", "enqueue"])) {
      store = options.store as EventStore;
    } else if (isPlainObject(options.store)) {
      try {
        store = createEventStore(options.store as EventStoreOptions);
      } catch (error) {
        const inner = error instanceof InvalidOptionError ? error : undefined;
        fail(inner === undefined ? "store" : `store.${inner.option}`, inner?.message ?? "invalid event store options");
      }
    } else {
      fail("store", `must be an EventStore (createEventStore) or its options; got ${describe(options.store)}`);
    }
  }

  const relay = options.relay;
  if (relay !== undefined && !hasMethods(relay, ["status", "on"])) {
    fail(
      "relay",
      `must be a relay handle with status() and on() (createRelay from @eventlane/relay); got ${describe(relay)}`,
    );
  }

  let names: TableNames;
  const storeNames = store?.options.names;
  for (const key of ["schema", "tablePrefix"] as const) {
    const value = options[key];
    if (value !== undefined && typeof value !== "string") fail(key, `must be a string; got ${describe(value)}`);
    if (value !== undefined && storeNames !== undefined && storeNames[key] !== value) {
      fail(key, `differs from the store's ${key} (${JSON.stringify(storeNames[key])}); set it on the store only`);
    }
  }
  if (storeNames !== undefined) {
    names = storeNames;
  } else {
    try {
      names = resolveTableNames({
        ...(options.schema === undefined ? {} : { schema: options.schema as string }),
        ...(options.tablePrefix === undefined ? {} : { tablePrefix: options.tablePrefix as string }),
      });
    } catch (error) {
      const option =
        typeof (error as { option?: unknown }).option === "string" ? (error as { option: string }).option : "schema";
      fail(option, (error as Error).message);
    }
  }

  const routePrefixRaw = options.routePrefix ?? DEFAULTS.routePrefix;
  if (
    routePrefixRaw !== "" &&
    (typeof routePrefixRaw !== "string" || !PATH_RE.test(routePrefixRaw) || routePrefixRaw.endsWith("/"))
  ) {
    fail(
      "routePrefix",
      `must be "" or a path starting with "/" and not ending with "/"; got ${describe(routePrefixRaw)}`,
    );
  }
  const routePrefix = routePrefixRaw as string;

  const r = section("routes", options.routes, ["liveness", "readiness", "status", "metrics"]);
  const routes = Object.freeze({
    liveness: joinPath(routePrefix, routePath("routes.liveness", r.liveness, DEFAULTS.routes.liveness)),
    readiness: joinPath(routePrefix, routePath("routes.readiness", r.readiness, DEFAULTS.routes.readiness)),
    status: joinPath(routePrefix, routePath("routes.status", r.status, DEFAULTS.routes.status)),
    metrics: joinPath(routePrefix, routePath("routes.metrics", r.metrics, DEFAULTS.routes.metrics)),
  });
  const enabled = Object.values(routes).filter((p): p is string => p !== false);
  const duplicate = enabled.find((p, i) => enabled.indexOf(p) !== i);
  if (duplicate !== undefined) fail("routes", `two routes share the path ${duplicate}`);

  const rd = section("readiness", options.readiness, ["timeoutMs"]);
  const readiness = Object.freeze({
    timeoutMs: integerMs("readiness.timeoutMs", rd.timeoutMs, DEFAULTS.readiness.timeoutMs, 1, 60_000),
  });

  const b = section("backlog", options.backlog, ["cacheTtlMs", "timeoutMs", "leaderStaleAfterMs"]);
  const backlog = Object.freeze({
    cacheTtlMs: integerMs("backlog.cacheTtlMs", b.cacheTtlMs, DEFAULTS.backlog.cacheTtlMs, 0, 600_000),
    timeoutMs: integerMs("backlog.timeoutMs", b.timeoutMs, DEFAULTS.backlog.timeoutMs, 1, 60_000),
    leaderStaleAfterMs: integerMs(
      "backlog.leaderStaleAfterMs",
      b.leaderStaleAfterMs,
      DEFAULTS.backlog.leaderStaleAfterMs,
    ),
  });

  const t = section("thresholds", options.thresholds, [
    "lagSeconds",
    "deadLetterRows",
    "parkedKeys",
    "notifyQueueUsageRatio",
  ]);
  const thresholds = Object.freeze({
    lagSeconds: nonNegative("thresholds.lagSeconds", t.lagSeconds, DEFAULTS.thresholds.lagSeconds),
    deadLetterRows: nonNegative("thresholds.deadLetterRows", t.deadLetterRows, DEFAULTS.thresholds.deadLetterRows),
    parkedKeys: nonNegative("thresholds.parkedKeys", t.parkedKeys, DEFAULTS.thresholds.parkedKeys),
    notifyQueueUsageRatio: nonNegative(
      "thresholds.notifyQueueUsageRatio",
      t.notifyQueueUsageRatio,
      DEFAULTS.thresholds.notifyQueueUsageRatio,
      1,
    ),
  });

  const m = section("metrics", options.metrics, ["registry", "onRequest"]);
  if (
    m.registry !== undefined &&
    !hasMethods(m.registry, ["registerMetric", "getMetricsAsJSON", "removeSingleMetric"])
  ) {
    fail("metrics.registry", `must be a Registry from @prometheus-io/client; got ${describe(m.registry)}`);
  }
  const metrics = Object.freeze({
    registry: m.registry as Registry | undefined,
    onRequest: hooks("metrics.onRequest", m.onRequest),
  });

  const s = section("status", options.status, ["onRequest"]);
  const status = Object.freeze({ onRequest: hooks("status.onRequest", s.onRequest) });

  return Object.freeze({
    db: db as Kysely<unknown>,
    store,
    relay: relay as EventlaneRelayHandle | undefined,
    names,
    routes,
    readiness,
    backlog,
    thresholds,
    metrics,
    status,
  });
}
