import type { EventStore } from "@eventlane/core";
import type { RelayHandle } from "@eventlane/core/internal";
import { Registry } from "@prometheus-io/client";
import type { FastifyInstance, FastifyPluginAsync, onRequestHookHandler } from "fastify";
import fp from "fastify-plugin";
import type { Kysely } from "kysely";
import { BacklogMonitor } from "./backlog/backlog-monitor.ts";
import type { EventlaneConsumerHandle } from "./consumer-handle.ts";
import { type ReadinessReport, ReadinessChecker } from "./health/readiness.ts";
import { registerBacklogMetrics } from "./metrics/backlog-metrics.ts";
import { registerConsumerMetrics } from "./metrics/consumer-metrics.ts";
import { negotiateFormat, renderMetrics } from "./metrics/exposition.ts";
import { RelayMetrics } from "./metrics/relay-metrics.ts";
import { type EventlanePluginOptions, resolvePluginOptions } from "./options.ts";
import { buildStatus, type EventlaneStatus } from "./status/status-report.ts";

/**
 * Declare your database type here to get a typed `fastify.eventlane.db`:
 *
 * ```ts
 * declare module "@eventlane/fastify" {
 *   interface EventlaneFastifyTypes { database: MyDatabase }
 * }
 * ```
 */
// biome-ignore lint/suspicious/noEmptyInterface: an augmentation point, empty until the application declares its types
export interface EventlaneFastifyTypes {}

/** The database type of `fastify.eventlane.db`: yours when declared in {@link EventlaneFastifyTypes}. */
export type EventlaneDatabase = EventlaneFastifyTypes extends { database: infer DB } ? DB : unknown;

/** What the plugin decorates the Fastify instance with, as `fastify.eventlane`. */
export interface EventlaneDecoration {
  /** The Kysely instance passed as `db`. */
  readonly db: Kysely<EventlaneDatabase>;
  /** The event store, when `store` was given. */
  readonly store: EventStore | undefined;
  /** The relay running in this process, when `relay` was given. */
  readonly relay: RelayHandle | undefined;
  /** The consumers running in this process, as passed in `consumers` (empty when none). */
  readonly consumers: readonly EventlaneConsumerHandle[];
  /** The registry `/metrics` serves (yours when passed as `metrics.registry`). */
  readonly registry: Registry;
  /** Runs the readiness checks (bounded by `readiness.timeoutMs`). */
  readiness(): Promise<ReadinessReport>;
  /** The cluster-wide status the status route serves (cached for `backlog.cacheTtlMs`). */
  status(): Promise<EventlaneStatus>;
}

declare module "fastify" {
  interface FastifyInstance {
    /** Eventlane's store, relay and health, added by `@eventlane/fastify`. */
    eventlane: EventlaneDecoration;
  }
}

const NO_STORE = "no-store";

function routeHooks(hooks: readonly onRequestHookHandler[]): { onRequest?: onRequestHookHandler[] } {
  return hooks.length === 0 ? {} : { onRequest: [...hooks] };
}

const eventlanePlugin: FastifyPluginAsync<EventlanePluginOptions> = async (fastify: FastifyInstance, rawOptions) => {
  const options = resolvePluginOptions(rawOptions);
  const registry = options.metrics.registry ?? new Registry();
  const monitor = new BacklogMonitor(options.db, options.names, options.backlog);
  const readiness = new ReadinessChecker(options.db, options.names, options.relay, options.readiness.timeoutMs);

  const unregisterBacklog = registerBacklogMetrics(registry, monitor);
  let relayMetrics: RelayMetrics | undefined;
  let unregisterConsumers = () => {};
  try {
    relayMetrics = options.relay === undefined ? undefined : new RelayMetrics(registry, options.relay);
    if (options.consumers.length > 0) unregisterConsumers = registerConsumerMetrics(registry, options.consumers);
  } catch (error) {
    // The metric names are taken in the caller's registry (another instance still registered?).
    relayMetrics?.close();
    unregisterBacklog();
    throw error;
  }

  const decoration: EventlaneDecoration = {
    db: options.db as Kysely<EventlaneDatabase>,
    store: options.store,
    relay: options.relay,
    consumers: options.consumers,
    registry,
    readiness: () => readiness.check(),
    status: async () => buildStatus(await monitor.read(), options.thresholds, options.relay, options.consumers),
  };
  fastify.decorate("eventlane", decoration);

  fastify.addHook("onClose", async () => {
    monitor.close();
    relayMetrics?.close();
    unregisterConsumers();
    unregisterBacklog();
  });

  const { routes } = options;
  if (routes.liveness !== false) {
    fastify.get(routes.liveness, async (_request, reply) => {
      reply.header("cache-control", "no-store");
      return { status: "alive" };
    });
  }
  if (routes.readiness !== false) {
    fastify.get(routes.readiness, async (_request, reply) => {
      const report = await readiness.check();
      reply.header("cache-control", NO_STORE);
      reply.code(report.status === "ready" ? 200 : 503);
      return report;
    });
  }
  if (routes.status !== false) {
    fastify.get(routes.status, routeHooks(options.status.onRequest), async (_request, reply) => {
      const status = await decoration.status();
      reply.header("cache-control", NO_STORE);
      // The route answers 503 only when it could not read the backlog; cluster conditions are in the body.
      reply.code(status.status === "unknown" ? 503 : 200);
      return status;
    });
  }
  if (routes.metrics !== false) {
    fastify.get(routes.metrics, routeHooks(options.metrics.onRequest), async (request, reply) => {
      const { body, contentType } = await renderMetrics(registry, negotiateFormat(request.headers.accept));
      reply.header("cache-control", NO_STORE);
      reply.type(contentType);
      return body;
    });
  }
};

/**
 * Eventlane for Fastify 5: decorates `fastify.eventlane` with the store and relay, and adds
 * liveness, readiness, a JSON status route and Prometheus `/metrics` with cluster-wide outbox lag
 * (and the lag and counters of the consumers running in this process, when given).
 *
 * ```ts
 * await app.register(eventlane, { db, store: createEventStore(), relay, consumers: [emailConsumer] });
 * ```
 */
export const eventlane = fp(eventlanePlugin, { fastify: "5.x", name: "@eventlane/fastify" });
export default eventlane;
