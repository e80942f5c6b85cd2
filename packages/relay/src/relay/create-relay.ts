import { Effect, Exit, Redacted, Scope } from "effect";
import pg from "pg";
import { randomInt } from "node:crypto";
import {
  type DeadLetter,
  type DeadLetterAction,
  DeadLetters,
  type ListDeadLettersOptions,
} from "../dead-letters/dead-letters.ts";
import { describeError, RelayDatabaseError, RelayStateError, SessionPoolerError } from "../errors.ts";
import { RelayEventEmitter, type RelayEventName, type RelayListener } from "../events.ts";
import { advisoryLockNamespace, closeLockSession, openLockSession } from "../leader/lock-session.ts";
import { decideBalance, instanceTag, readShardHolders } from "../leader/shard-balancer.ts";
import { relayStatements } from "../outbox-reader/statements.ts";
import { type RelayOptions, resolveRelayOptions } from "../options.ts";
import { InvalidOptionError } from "@eventlane/core";
import type { RelayStatusSnapshot } from "@eventlane/core/internal";
import { createProducer } from "../producer/create-producer.ts";
import type { ProducerPort } from "../producer/producer-port.ts";
import { checkSchemaVersion, checkShardCount, checkTopics } from "../startup/startup-checks.ts";
import { listenForNotifications } from "../wakeup/notify-listener.ts";
import { Wakeup } from "../wakeup/wakeup.ts";
import { makeBackoffStepper } from "./backoff.ts";
import { type RelayRuntime, serialiser } from "./runtime.ts";
import { shardWorker } from "./shard-worker.ts";

/** What {@link Relay.status} reports about this instance (the relay's contract with its watchers). */
export type RelayStatus = RelayStatusSnapshot;

/** Listing and resolving dead letters (each action is recorded in `dead_letter_log`). */
export interface RelayDeadLetters {
  /** Dead-lettered rows in id order. */
  list(options?: ListDeadLettersOptions): Promise<DeadLetter[]>;
  /** Back to pending, attempts reset, key unparked: it is published before the key's later events. */
  requeue(outboxId: string, action?: DeadLetterAction): Promise<void>;
  /** Gives up on it (status `skipped`), unparking its key; recorded. */
  skip(outboxId: string, action?: DeadLetterAction): Promise<void>;
}

/** A relay instance: competes for its shards and publishes the ones it leads. */
export interface Relay {
  /**
   * Checks the schema version, the shard count, that the lock session is a real session, and that
   * every topic exists; connects the producer; then starts a fiber per shard. Rejects with a typed
   * error (and leaves nothing running) when a check fails.
   */
  start(): Promise<void>;
  /** Stops reading, lets each in-flight batch finish and be marked, releases the locks, disconnects. */
  stop(): Promise<void>;
  status(): RelayStatus;
  readonly deadLetters: RelayDeadLetters;
  /** Subscribes to a lifecycle event; returns the unsubscribe function. */
  on<K extends RelayEventName>(event: K, listener: RelayListener<K>): () => void;
}

/** Stands in for the built-in adapter until `start()` creates it (its client is imported then). */
const unstartedProducer: ProducerPort = {
  connect: () => Promise.reject(new RelayStateError({ message: "the producer is created at start()" })),
  send: () => Promise.reject(new RelayStateError({ message: "the producer is created at start()" })),
  reset: () => Promise.resolve(),
  describeTopics: () => Promise.reject(new RelayStateError({ message: "the producer is created at start()" })),
  disconnect: () => Promise.resolve(),
  connected: false,
};

/** Verifies that statements on one lock session run on one backend that keeps its session lock. */
async function probeSessionPooling(connectionString: string, leaseMs: number, namespace: number): Promise<void> {
  const client = await openLockSession({ connectionString, leaseMs, applicationName: "eventlane-relay probe" });
  try {
    const probe = randomInt(1, 2 ** 31 - 1);
    const a = await client.query<{ pid: number }>(
      "SELECT pg_backend_pid() AS pid, pg_advisory_lock($1::integer, $2::integer)",
      [namespace ^ 0x2a, probe],
    );
    const b = await client.query<{ pid: number; held: boolean }>(
      `SELECT pg_backend_pid() AS pid, EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'
         AND classid::bigint = $1 AND objid::bigint = $2 AND pid = pg_backend_pid() AND granted) AS held`,
      [namespace ^ 0x2a, probe],
    );
    if (a.rows[0]?.pid !== b.rows[0]?.pid || b.rows[0]?.held !== true) {
      throw new SessionPoolerError({
        message:
          "connectionString does not give the relay a stable PostgreSQL session (a pooler in transaction mode, " +
          "such as PgBouncer pool_mode=transaction?): session advisory locks and LISTEN cannot work through it",
      });
    }
    await client.query("SELECT pg_advisory_unlock($1::integer, $2::integer)", [namespace ^ 0x2a, probe]);
  } finally {
    await closeLockSession(client, 2000);
  }
}

/** The background part of a started relay, as a scoped Effect. */
function runRelay(rt: RelayRuntime) {
  return Effect.gen(function* () {
    const { options } = rt;
    const wrap = <T>(operation: string, fn: () => Promise<T>) =>
      Effect.tryPromise({
        try: fn,
        catch: (e) =>
          typeof e === "object" &&
          e !== null &&
          "code" in e &&
          typeof e.code === "string" &&
          e.code.startsWith("EVENTLANE_")
            ? (e as unknown as Error)
            : new RelayDatabaseError({ operation, message: `could not ${operation}: ${describeError(e)}`, cause: e }),
      });
    yield* wrap("check the schema version", () => checkSchemaVersion(rt.pool, rt.tables));
    yield* wrap("check the shard count", () => checkShardCount(rt.pool, rt.tables, options.shardCount));
    yield* wrap("probe the lock session", () =>
      probeSessionPooling(rt.connectionString, options.leaseMs, rt.namespace),
    );
    yield* Effect.acquireRelease(
      wrap("connect the producer", () =>
        rt.producer.connect({
          onConnected: () => rt.events.emit("producer:connected", {}),
          onDisconnected: () => rt.events.emit("producer:disconnected", {}),
        }),
      ),
      () => Effect.promise(() => rt.sendSerially(() => rt.producer.disconnect()).catch(() => undefined)),
    );
    rt.topics = yield* wrap("check the topics", () => checkTopics(rt.producer, options.topics));
    if (options.kafka?.mode === "transactional" && rt.producer.transactional === undefined) {
      return yield* Effect.fail(
        new InvalidOptionError({
          option: "kafka.mode",
          message: `kafka.mode: "transactional" needs a producer adapter with transactions; the given producer has none`,
        }),
      );
    }
    if (options.notify) yield* Effect.forkScoped(notifyLoop(rt));
    if (rt.balancing && options.shardCount > 1) yield* Effect.forkScoped(balanceLoop(rt));
    for (const shard of options.shards) yield* Effect.forkScoped(shardWorker(rt, shard));
  });
}

/**
 * Every `acquireIntervalMs`: counts the live instances and who holds which shard (from the lock
 * sessions' names and `pg_locks`), lets the shard fibers acquire only up to this instance's share, and
 * hands over one shard when this instance holds more than its share (see {@link decideBalance}).
 */
function balanceLoop(rt: RelayRuntime) {
  return Effect.gen(function* () {
    const me = instanceTag(rt.options.instanceId);
    for (;;) {
      const holders = yield* Effect.promise(() =>
        readShardHolders(rt.pool, rt.namespace).then(
          (h) => h,
          (error: unknown) => {
            rt.events.emit("error", {
              error: new RelayDatabaseError({
                operation: "balance the shards",
                message: `could not read the shard holders: ${describeError(error)}`,
                cause: error,
              }),
            });
            return undefined;
          },
        ),
      );
      if (holders !== undefined) {
        const decision = decideBalance({ shardCount: rt.options.shardCount, me, holders });
        rt.balance.mayAcquire = decision.mayAcquire;
        const handOver = decision.release === undefined ? undefined : rt.handOver.get(decision.release);
        if (handOver !== undefined) {
          rt.balance.mayAcquire = false;
          handOver();
        }
      }
      yield* Effect.sleep(rt.options.acquireIntervalMs);
    }
  });
}

/** Keeps a LISTEN session open, reconnecting with the shard back-off; polling covers the gaps. */
function notifyLoop(rt: RelayRuntime) {
  return Effect.gen(function* () {
    const backoff = yield* makeBackoffStepper(rt.options.backoffBaseMs, rt.options.backoffMaxMs);
    for (;;) {
      const closed = yield* Effect.exit(
        Effect.scoped(
          Effect.gen(function* () {
            let onClose: (e: unknown) => void = () => undefined;
            const ended = new Promise<unknown>((resolve) => {
              onClose = resolve;
            });
            yield* Effect.acquireRelease(
              Effect.tryPromise(() =>
                listenForNotifications({
                  connectionString: rt.connectionString,
                  channel: rt.tables.notifyChannel,
                  applicationName: "eventlane-relay listen",
                  onNotify: () => rt.wakeup.wake(),
                  onClose: (e) => onClose(e),
                }),
              ),
              (client) => Effect.promise(() => closeLockSession(client, 2000)),
            );
            yield* backoff.reset;
            // A row may have committed while nobody listened.
            rt.wakeup.wake();
            return yield* Effect.promise(() => ended);
          }),
        ),
      );
      const error = closed._tag === "Success" ? closed.value : closed.cause;
      rt.events.emit("error", {
        error: new RelayDatabaseError({
          operation: "listen",
          message: `the LISTEN session ended (polling continues): ${describeError(error)}`,
          cause: error,
        }),
      });
      yield* Effect.sleep(yield* backoff.next);
    }
  });
}

/**
 * Creates a relay. Options are validated now (throws `InvalidOptionError` naming the option); nothing
 * connects until {@link Relay.start}. A relay starts once; after `stop()` create a new one.
 */
export function createRelay(options: RelayOptions): Relay {
  const resolved = resolveRelayOptions(options);
  const events = new RelayEventEmitter();
  const connectionString = Redacted.value(resolved.connectionString);
  const pool = new pg.Pool({
    connectionString,
    // Per shard: the batch being marked and the next one read ahead; plus retention.
    max: 2 * resolved.shards.length + 1,
    application_name: "eventlane-relay",
    // A silent relay never keeps a transaction (and its FOR SHARE lock on the shard row) longer than a lease.
    // Generic plans, without parallel workers, for the relay's prepared statements: with a literal
    // shard count the planner guesses 0.5% of pending rows match `(key_hash & 2147483647) % n =
    // shard` and sorts the whole backlog (50-75 ms per read of 500 from 100k pending rows), and a
    // generic plan with parallel workers gathers and merges (10 ms). Serial generic plans walk the
    // pending index in id order and stop at the limit: 1.5 ms, from the first execution on.
    options: `-c idle_in_transaction_session_timeout=${resolved.leaseMs} -c statement_timeout=${resolved.statementTimeoutMs} -c plan_cache_mode=force_generic_plan -c max_parallel_workers_per_gather=0`,
    keepAlive: true,
    // Client-side deadline for a connection that went silent (a partition, a hung proxy): the
    // server's statement_timeout cannot help when nothing reaches it, and TCP keepalives cannot
    // either when a middlebox keeps the socket alive. A batch runs uninterruptibly, so this bounds
    // how long a partitioned instance stays stuck before it can stand for leadership again. No
    // answer later than a lease is of use to a leader anyway (it stops sending once its lease
    // runs out), so the deadline is the lease (or the statement timeout, if shorter). The client
    // is then discarded.
    query_timeout: Math.min(resolved.statementTimeoutMs, resolved.leaseMs),
    connectionTimeoutMillis: resolved.leaseMs,
    // Idle connections are closed after a third of a lease: after a partition heals, connections
    // that went silent during it (their sockets still look open) are gone before this instance can
    // lead again, instead of each costing a query deadline when it is next checked out.
    idleTimeoutMillis: Math.max(1000, Math.floor(resolved.leaseMs / 3)),
  });
  // A checked-out client whose session the server ended (idle_in_transaction_session_timeout after a
  // pause) emits 'error' on itself: swallow it there, the pending query rejects and is reported.
  pool.on("connect", (client) => client.on("error", () => undefined));
  pool.on("error", (error) =>
    events.emit("error", { error: new RelayDatabaseError({ operation: "pool", message: describeError(error) }) }),
  );
  let producerConnected = false;
  events.on("producer:connected", () => {
    producerConnected = true;
  });
  events.on("producer:disconnected", () => {
    producerConnected = false;
  });
  const rt: RelayRuntime = {
    options: resolved,
    tables: resolved.tables,
    connectionString,
    pool,
    statements: relayStatements(resolved.tables),
    producer: resolved.producer ?? unstartedProducer,
    shardProducers: new Map(),
    events,
    wakeup: new Wakeup(),
    namespace: advisoryLockNamespace(resolved.tables),
    shardStatus: new Map(),
    balance: { mayAcquire: true },
    balancing: resolved.shards.length === resolved.shardCount,
    handOver: new Map(),
    topics: new Map(),
    sendSerially: serialiser(),
  };
  const deadLetterStore = new DeadLetters(pool, resolved.tables, resolved.instanceId);
  let state: "created" | "starting" | "running" | "stopping" | "stopped" = "created";
  let scope: Scope.Closeable | undefined;

  const stop = async () => {
    if (state === "stopped" || state === "created") {
      if (state === "created") {
        state = "stopped";
        await pool.end().catch(() => undefined);
      }
      return;
    }
    state = "stopping";
    const s = scope;
    scope = undefined;
    if (s !== undefined) await Effect.runPromise(Scope.close(s, Exit.void));
    await pool.end().catch(() => undefined);
    state = "stopped";
  };

  return {
    async start() {
      if (state !== "created") throw new RelayStateError({ message: `start() on a relay that is ${state}` });
      state = "starting";
      if (rt.producer === unstartedProducer) {
        try {
          rt.producer = await createProducer(resolved.kafka!);
        } catch (error) {
          state = "stopped";
          await pool.end().catch(() => undefined);
          throw new InvalidOptionError({
            option: "kafka.client",
            message: `kafka.client: could not load the "${resolved.kafka!.client}" adapter (is its package installed?): ${describeError(error)}`,
          });
        }
      }
      const s = await Effect.runPromise(Scope.make());
      scope = s;
      try {
        await Effect.runPromise(Scope.provide(s)(runRelay(rt)));
        state = "running";
      } catch (error) {
        state = "stopping";
        await Effect.runPromise(Scope.close(s, Exit.void));
        scope = undefined;
        await pool.end().catch(() => undefined);
        state = "stopped";
        throw error;
      }
    },
    stop,
    status() {
      return {
        instanceId: resolved.instanceId,
        running: state === "running",
        producerConnected,
        shards: resolved.shards.map(
          (shard) => rt.shardStatus.get(shard) ?? { shard, leader: false, epoch: null, lastHeartbeatAt: null },
        ),
      };
    },
    deadLetters: {
      list: (o) => deadLetterStore.list(o),
      async requeue(outboxId, action) {
        const row = await deadLetterStore.requeue(outboxId, action);
        events.emit("key:requeued", { topic: row.topic, outboxId });
        rt.wakeup.wake();
      },
      async skip(outboxId, action) {
        const row = await deadLetterStore.skip(outboxId, action);
        events.emit("key:skipped", { topic: row.topic, outboxId });
        rt.wakeup.wake();
      },
    },
    on: (event, listener) => events.on(event, listener),
  };
}
