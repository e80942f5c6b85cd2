import {
  type Executor,
  createEventStore,
  type EventStore,
  type EventStoreOptions,
  InvalidIdentifierError,
  InvalidOptionError,
  resolveTableNames,
  type TableNames,
} from "@eventlane/core";
import {
  describeValue,
  integerOption,
  invalidOption,
  optionSection,
  type RelayHandle,
  refuseUnknownOptions,
} from "@eventlane/core/internal";
import type { Registry } from "@prometheus-io/client";
import type { onRequestHookHandler } from "fastify";
import type { Kysely } from "kysely";
import type { EventlaneConsumerHandle } from "./consumer-handle.ts";
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
  /** Records a consumer partition may lag before `consumer_lag` fires. @default 10000 */
  readonly consumerLagRecords?: number;
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
   * The relay running in this process (`createRelay(...)` from `@eventlane/relay`, or anything with
   * its `status()` and an `on()` that returns the function removing the listener). Adds the relay
   * and producer checks to readiness and the per-instance relay metrics. @default none
   */
  readonly relay?: RelayHandle;
  /**
   * The consumers running in this process (`createConsumer(...)` from `@eventlane/consumer`, or
   * anything with `options.groupId`, `stats()` and `lag()`). Adds their lag and counters to
   * `/metrics` and their lag to the status route, read at scrape time. @default none
   */
  readonly consumers?: readonly EventlaneConsumerHandle[];
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
  readonly relay: RelayHandle | undefined;
  readonly consumers: readonly EventlaneConsumerHandle[];
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

/** Every field of `T` that has a default, at its default. */
type Defaulted<T> = { readonly [K in keyof T]-?: Exclude<T[K], undefined> };

/** The options that have defaults (the README's option table is checked against them by a test). */
export interface EventlanePluginDefaults {
  readonly routePrefix: string;
  readonly routes: Defaulted<EventlaneRoutesOptions>;
  readonly readiness: Defaulted<EventlaneReadinessOptions>;
  readonly backlog: Defaulted<EventlaneBacklogOptions>;
  readonly thresholds: Defaulted<EventlaneThresholdsOptions>;
}

function freezeDeep<T extends object>(value: T): T {
  for (const child of Object.values(value)) if (typeof child === "object" && child !== null) freezeDeep(child);
  return Object.freeze(value);
}

/** Every default in one place. */
export const DEFAULTS = freezeDeep({
  routePrefix: "",
  routes: {
    liveness: "/health/live",
    readiness: "/health/ready",
    status: "/eventlane/status",
    metrics: "/metrics",
  },
  readiness: { timeoutMs: 2000 },
  backlog: { cacheTtlMs: 2000, timeoutMs: 3000, leaderStaleAfterMs: 30_000 },
  thresholds: {
    lagSeconds: 60,
    deadLetterRows: 0,
    parkedKeys: 0,
    notifyQueueUsageRatio: 0.5,
    consumerLagRecords: 10_000,
  },
} as const satisfies EventlanePluginDefaults);

/** Every key of `T`, as a value the compiler checks is complete. */
type Keys<T> = { readonly [K in keyof T]-?: true };

const TOP_LEVEL = Object.keys({
  db: true,
  store: true,
  relay: true,
  consumers: true,
  schema: true,
  tablePrefix: true,
  routePrefix: true,
  routes: true,
  readiness: true,
  backlog: true,
  thresholds: true,
  metrics: true,
  status: true,
} satisfies Keys<EventlanePluginOptions>);

/** The keys of each nested options object. */
const SECTIONS = {
  routes: Object.keys({
    liveness: true,
    readiness: true,
    status: true,
    metrics: true,
  } satisfies Keys<EventlaneRoutesOptions>),
  readiness: Object.keys({ timeoutMs: true } satisfies Keys<EventlaneReadinessOptions>),
  backlog: Object.keys({
    cacheTtlMs: true,
    timeoutMs: true,
    leaderStaleAfterMs: true,
  } satisfies Keys<EventlaneBacklogOptions>),
  thresholds: Object.keys({
    lagSeconds: true,
    deadLetterRows: true,
    parkedKeys: true,
    notifyQueueUsageRatio: true,
    consumerLagRecords: true,
  } satisfies Keys<EventlaneThresholdsOptions>),
  metrics: Object.keys({ registry: true, onRequest: true } satisfies Keys<EventlaneMetricsOptions>),
  status: Object.keys({ onRequest: true } satisfies Keys<EventlaneStatusOptions>),
} as const;

/**
 * Every option the plugin takes, by its path (`"db"`, `"backlog.timeoutMs"`): the top-level ones
 * and each key of a nested options object.
 */
export const PLUGIN_OPTION_PATHS: readonly string[] = Object.freeze([
  ...TOP_LEVEL.filter((key) => !Object.hasOwn(SECTIONS, key)),
  ...Object.entries(SECTIONS).flatMap(([section, keys]) => keys.map((key) => `${section}.${key}`)),
]);

/** Options Fastify's `register` itself understands; they reach the plugin too and are ignored. */
const FASTIFY_REGISTER_KEYS = ["logLevel", "logSerializers"];

/**
 * What a handle option (`db`, `store`, `relay`, a consumer, a hook, a registry) was given as, for an
 * error message. Never its content: a pool, a client or a connection string can hold a password.
 */
function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** A nested options object, `{}` when left out. */
function section(path: keyof typeof SECTIONS, value: unknown): Record<string, unknown> {
  return value === undefined ? {} : optionSection(path, value, SECTIONS[path]);
}

/** A threshold: a number from 0 to `max`, fractions allowed; `fallback` when undefined. */
function thresholdOption(option: string, value: unknown, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || value > max) {
    invalidOption(option, `must be a number from 0 to ${max}; got ${describeValue(value)}`);
  }
  return value as number;
}

/** A count threshold (rows, keys, records): an integer from 0. */
function countOption(option: string, value: unknown, fallback: number): number {
  return integerOption(option, value, fallback, 0, Number.MAX_SAFE_INTEGER);
}

const PATH_RE = /^\/[A-Za-z0-9._~\-/]*$/;

function routePath(option: string, value: unknown, fallback: string): string | false {
  if (value === undefined) return fallback;
  if (value === false) return false;
  if (typeof value !== "string" || !PATH_RE.test(value) || value.includes("//")) {
    invalidOption(
      option,
      `must be a path starting with "/" (letters, digits, ".", "_", "~", "-", "/") or false; got ${describeValue(value)}`,
    );
  }
  return value as string;
}

function hooks(option: string, value: unknown): readonly onRequestHookHandler[] {
  if (value === undefined) return [];
  const list: unknown[] = Array.isArray(value) ? value : [value];
  list.forEach((hook, i) => {
    if (typeof hook !== "function") {
      invalidOption(
        Array.isArray(value) ? `${option}[${i}]` : option,
        `must be a Fastify onRequest hook (a function); got ${kindOf(hook)}`,
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

function eventStore(value: unknown): EventStore | undefined {
  if (value === undefined) return undefined;
  if (hasMethods(value, ["appendToStream", "readStream", "enqueue"])) return value as EventStore;
  if (!isPlainObject(value)) {
    invalidOption("store", `must be an EventStore (createEventStore) or its options; got ${kindOf(value)}`);
  }
  try {
    return createEventStore(value as EventStoreOptions);
  } catch (error) {
    // The store's own errors, with the option's path under `store`.
    if (error instanceof InvalidIdentifierError) {
      throw new InvalidIdentifierError({
        option: `store.${error.option}`,
        value: error.value,
        message: `store.${error.message}`,
      });
    }
    if (error instanceof InvalidOptionError) invalidOption(`store.${error.option}`, error.message);
    invalidOption("store", "invalid event store options");
  }
}

function consumerHandles(value: unknown): readonly EventlaneConsumerHandle[] {
  if (value === undefined) return Object.freeze([]);
  if (!Array.isArray(value)) {
    invalidOption(
      "consumers",
      `must be an array of consumers (createConsumer from @eventlane/consumer); got ${kindOf(value)}`,
    );
  }
  value.forEach((consumer: unknown, i) => {
    const option = `consumers[${i}]`;
    if (!hasMethods(consumer, ["stats", "lag"])) {
      invalidOption(
        option,
        `must be a consumer with options.groupId, stats() and lag() (createConsumer from @eventlane/consumer); got ${kindOf(consumer)}`,
      );
    }
    const groupId = (consumer as { options?: { groupId?: unknown } }).options?.groupId;
    if (typeof groupId !== "string" || groupId === "") {
      invalidOption(
        `${option}.options.groupId`,
        `must be the consumer's group id, a non-empty string; got ${describeValue(groupId)}`,
      );
    }
    const first = value.indexOf(consumer);
    if (first !== i) invalidOption(option, `is the same consumer as consumers[${first}]; list each consumer once`);
  });
  return Object.freeze([...(value as EventlaneConsumerHandle[])]);
}

/**
 * The table names: the store's when a store is given (the plugin's `schema` and `tablePrefix` may
 * then only repeat them), else from `schema` and `tablePrefix`. A bad identifier throws core's
 * `InvalidIdentifierError`, as the store and the consumer do.
 */
function tableNames(options: Record<string, unknown>, store: EventStore | undefined): TableNames {
  const own = resolveTableNames({
    ...(options.schema === undefined ? {} : { schema: options.schema as string }),
    ...(options.tablePrefix === undefined ? {} : { tablePrefix: options.tablePrefix as string }),
  });
  if (store === undefined) return own;
  const storeNames = store.options.names;
  for (const key of ["schema", "tablePrefix"] as const) {
    if (options[key] !== undefined && own[key] !== storeNames[key]) {
      invalidOption(
        key,
        `differs from the store's ${key} (${JSON.stringify(storeNames[key])}); set it on the store only`,
      );
    }
  }
  return storeNames;
}

function joinPath(prefix: string, path: string | false): string | false {
  if (path === false) return false;
  return prefix === "" ? path : `${prefix}${path === "/" ? "" : path}`;
}

/**
 * Validates and resolves the plugin's options once. Throws `InvalidOptionError`
 * (`code: "EVENTLANE_INVALID_OPTION"`) whose `option` names the offending option by its path, or
 * `InvalidIdentifierError` (`code: "EVENTLANE_INVALID_IDENTIFIER"`) for a bad `schema` or
 * `tablePrefix` (also under `store`).
 */
export function resolvePluginOptions(options: unknown): ResolvedEventlanePluginOptions {
  if (typeof options === "object" && options !== null && Object.hasOwn(options, "prefix")) {
    invalidOption(
      "prefix",
      "Fastify's register prefix does not apply to this plugin (it is not encapsulated); use routePrefix",
    );
  }
  refuseUnknownOptions(options, [...TOP_LEVEL, ...FASTIFY_REGISTER_KEYS], "plugin");
  const o = options as Record<string, unknown>;

  if (!hasMethods(o.db, ["selectFrom", "transaction", "getExecutor"])) {
    invalidOption("db", `must be a Kysely instance; got ${kindOf(o.db)}`);
  }
  const store = eventStore(o.store);
  if (o.relay !== undefined && !hasMethods(o.relay, ["status", "on"])) {
    invalidOption(
      "relay",
      `must be a relay handle with status() and on() (createRelay from @eventlane/relay); got ${kindOf(o.relay)}`,
    );
  }
  const consumers = consumerHandles(o.consumers);
  const names = tableNames(o, store);

  const routePrefix = o.routePrefix ?? DEFAULTS.routePrefix;
  if (
    routePrefix !== "" &&
    (typeof routePrefix !== "string" || !PATH_RE.test(routePrefix) || routePrefix.endsWith("/"))
  ) {
    invalidOption(
      "routePrefix",
      `must be "" or a path starting with "/" and not ending with "/"; got ${describeValue(routePrefix)}`,
    );
  }

  const r = section("routes", o.routes);
  const route = (key: keyof typeof DEFAULTS.routes) =>
    joinPath(routePrefix as string, routePath(`routes.${key}`, r[key], DEFAULTS.routes[key]));
  const routes = Object.freeze({
    liveness: route("liveness"),
    readiness: route("readiness"),
    status: route("status"),
    metrics: route("metrics"),
  });
  const enabled = Object.values(routes).filter((p): p is string => p !== false);
  const duplicate = enabled.find((p, i) => enabled.indexOf(p) !== i);
  if (duplicate !== undefined) invalidOption("routes", `two routes share the path ${duplicate}`);

  const rd = section("readiness", o.readiness);
  const readiness = Object.freeze({
    timeoutMs: integerOption("readiness.timeoutMs", rd.timeoutMs, DEFAULTS.readiness.timeoutMs, 1, 60_000),
  });

  const b = section("backlog", o.backlog);
  const backlog = Object.freeze({
    cacheTtlMs: integerOption("backlog.cacheTtlMs", b.cacheTtlMs, DEFAULTS.backlog.cacheTtlMs, 0, 600_000),
    timeoutMs: integerOption("backlog.timeoutMs", b.timeoutMs, DEFAULTS.backlog.timeoutMs, 1, 60_000),
    leaderStaleAfterMs: integerOption(
      "backlog.leaderStaleAfterMs",
      b.leaderStaleAfterMs,
      DEFAULTS.backlog.leaderStaleAfterMs,
      1,
      3_600_000,
    ),
  });

  const t = section("thresholds", o.thresholds);
  const thresholds = Object.freeze({
    lagSeconds: thresholdOption("thresholds.lagSeconds", t.lagSeconds, DEFAULTS.thresholds.lagSeconds),
    deadLetterRows: countOption("thresholds.deadLetterRows", t.deadLetterRows, DEFAULTS.thresholds.deadLetterRows),
    parkedKeys: countOption("thresholds.parkedKeys", t.parkedKeys, DEFAULTS.thresholds.parkedKeys),
    notifyQueueUsageRatio: thresholdOption(
      "thresholds.notifyQueueUsageRatio",
      t.notifyQueueUsageRatio,
      DEFAULTS.thresholds.notifyQueueUsageRatio,
      1,
    ),
    consumerLagRecords: countOption(
      "thresholds.consumerLagRecords",
      t.consumerLagRecords,
      DEFAULTS.thresholds.consumerLagRecords,
    ),
  });

  const m = section("metrics", o.metrics);
  if (
    m.registry !== undefined &&
    !hasMethods(m.registry, ["registerMetric", "getMetricsAsJSON", "removeSingleMetric"])
  ) {
    invalidOption("metrics.registry", `must be a Registry from @prometheus-io/client; got ${kindOf(m.registry)}`);
  }
  const metrics = Object.freeze({
    registry: m.registry as Registry | undefined,
    onRequest: hooks("metrics.onRequest", m.onRequest),
  });

  const s = section("status", o.status);
  const status = Object.freeze({ onRequest: hooks("status.onRequest", s.onRequest) });

  return Object.freeze({
    db: o.db as Kysely<unknown>,
    store,
    relay: o.relay as RelayHandle | undefined,
    consumers,
    names,
    routes,
    readiness,
    backlog,
    thresholds,
    metrics,
    status,
  });
}
