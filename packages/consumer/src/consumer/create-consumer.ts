import type { EventDefinition } from "@eventlane/core";
import { sql } from "kysely";
import { ChunkAbandoned, chunkApplier } from "../apply/chunk-applier.ts";
import type { Handlers } from "../apply/run-handlers.ts";
import type {
  ChunkSink,
  ConsumerClient,
  ConsumerClientSettings,
  PartitionOffset,
  TopicPartition,
} from "../client/consumer-client.ts";
import { type ActorOptions, checkActor, type DeadLetterLog, deadLetterLog } from "../dead-letters/dead-letters.ts";
import { type ReplayResult, replayDeadLetter } from "../dead-letters/replay-dead-letter.ts";
import { ConsumerStateError, DatabaseUnreachableError } from "../errors.ts";
import {
  ConsumerEmitter,
  type ConsumerEventName,
  type ConsumerListener,
  type ConsumerStats,
  type ErrorStage,
  type PartitionLag,
} from "../events.ts";
import { type ConsumerOptions, type ResolvedConsumerOptions, resolveConsumerOptions } from "../options.ts";
import { assertConsumerSchemaVersion } from "../schema/migrations.ts";
import { consumerStore, type DeadLetterFilter, type InboxTotals } from "../store/consumer-store.ts";

/** A consumer's dead letters: the {@link DeadLetterLog} plus replays run by this consumer's handlers. */
export interface ConsumerDeadLetters extends DeadLetterLog {
  /**
   * Applies a pending (or replay-requested) dead letter exactly once with this consumer's handlers
   * (their context has `replay` set). Resolves `unchanged` when it was already replayed or skipped.
   * Throws `HandlerFailure` when the handler throws (the dead letter stays pending),
   * `DeadLetterNotReplayableError` or `DeadLetterNotFoundError`. Works whether or not the consumer
   * is started.
   */
  replay(id: string, by: ActorOptions): Promise<ReplayResult>;
  /** Replays every unresolved dead letter the filter takes, oldest first; stops at the first that throws. */
  replayWhere(filter: DeadLetterFilter, by: ActorOptions): Promise<ReplayResult[]>;
}

/** A typed consumer. Create it with {@link createConsumer}; it holds no connection until `start()`. */
export interface Consumer<DB, Defs extends readonly EventDefinition[]> {
  readonly options: ResolvedConsumerOptions<DB, Defs>;
  /**
   * Checks the database and the consumer schema, connects to Kafka, joins the group and starts
   * consuming. Resolves once the group is joined. Throws `DatabaseUnreachableError` (code
   * `EVENTLANE_DATABASE_UNREACHABLE`) and `SchemaVersionError` (`EVENTLANE_SCHEMA_VERSION`, run the
   * migrations). While Kafka cannot be reached it does not throw: it retries with backoff (1 s, 2 s,
   * 4 s ... capped at 30 s) and reports each try as `kafka:waiting`; `stop()` ends the wait.
   */
  start(): Promise<void>;
  /**
   * Stops fetching, lets the chunks in flight finish (their transactions and offset commits) and
   * leaves the group. Idempotent.
   */
  stop(): Promise<void>;
  /** Subscribes to a runtime event; returns the unsubscribe function. */
  on<K extends ConsumerEventName>(name: K, listener: ConsumerListener<K>): () => void;
  /** Counters of this instance since it was created. */
  stats(): ConsumerStats;
  /** The lag of the partitions this member owns, as last read (every `lagIntervalMs`); empty once stopped. */
  lag(): readonly PartitionLag[];
  /** Durable totals from the consumer's database: keys seen, duplicates skipped, gaps, dead letters. */
  totals(): Promise<InboxTotals>;
  /** The consumer's dead letters: list, replay, skip, request a replay. */
  readonly deadLetters: ConsumerDeadLetters;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
// Kafka start-up backoff (ms): 1000, 2000, 4000, 8000, 16000, 30000, 30000, ...
const kafkaBackoffMs = (attempt: number) => Math.min(30_000, 1_000 * 2 ** Math.min(attempt - 1, 10));
const partitionId = (topic: string, partition: number) => `${topic}\u0000${partition}`;

async function createClient<DB>(
  options: ResolvedConsumerOptions<DB, readonly EventDefinition[]>,
): Promise<ConsumerClient> {
  const settings: ConsumerClientSettings = {
    groupId: options.groupId,
    topics: options.topics,
    fromBeginning: options.fromBeginning,
    isolation: options.isolation,
    batchSize: options.batchSize,
    concurrency: options.partitionsConsumedConcurrently,
    maxWaitTimeMs: options.maxWaitTimeMs,
    sessionTimeoutMs: options.sessionTimeoutMs,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    groupProtocol: options.groupProtocol,
  };
  // Each client is an optional peer, imported only when chosen.
  if (options.kafka.client === "platformatic") {
    const { PlatformaticConsumerClient } = await import("../client/platformatic-client.ts");
    return new PlatformaticConsumerClient(options.kafka, settings);
  }
  const { KafkaJsConsumerClient } = await import("../client/kafkajs-client.ts");
  return new KafkaJsConsumerClient(options.kafka, settings);
}

/**
 * Creates a typed consumer: it decodes each record with the event definitions (upcasting from the
 * schema-version header) and applies a partition's records in chunks, exactly once: one
 * transaction of the consumer's database per chunk runs the handlers and moves the keys'
 * watermarks, and the chunk's Kafka offset is committed only after that transaction commits.
 * Undecodable records and records whose handler keeps failing are dead-lettered with the reason,
 * and the partition keeps flowing; dead letters can be replayed, exactly once.
 *
 * ```ts
 * const consumer = createConsumer({
 *   kafka: { brokers: ["localhost:9092"] },
 *   db, groupId: "email",
 *   events: [BookingConfirmed, BookingCancelled],
 *   handlers: {
 *     booking_confirmed: async (event, { trx }) => {
 *       await trx.insertInto("outgoing_email").values({ to: event.data.guestEmail }).execute();
 *     },
 *   },
 * });
 * await consumer.start();
 * ```
 */
export function createConsumer<DB, const Defs extends readonly EventDefinition[]>(
  options: ConsumerOptions<DB, Defs>,
): Consumer<DB, Defs> {
  const resolved = resolveConsumerOptions(options);
  const { db, names } = resolved;
  const store = consumerStore(names, resolved.name);
  const emitter = new ConsumerEmitter();
  const counters = {
    received: 0,
    chunks: 0,
    applied: 0,
    ignored: 0,
    duplicates: 0,
    deadLettered: 0,
    gaps: 0,
    handlerFailures: 0,
    errors: 0,
    replayed: 0,
    skipped: 0,
  };
  const handlers: Handlers<DB> = {
    handlers: resolved.handlers,
    batchHandlers: resolved.batchHandlers,
    handleBatch: resolved.handleBatch,
  };
  let state: "idle" | "starting" | "running" | "stopping" | "stopped" = "idle";
  let client: ConsumerClient | null = null;
  let stopped: Promise<void> | null = null;
  const timers: ReturnType<typeof setInterval>[] = [];
  /** Next offset to commit per owned partition (null until its first chunk). */
  const owned = new Map<string, { topic: string; partition: number; committed: bigint | null }>();
  let lagSnapshot: readonly PartitionLag[] = [];
  let background: Promise<void> = Promise.resolve();

  const fail = (stage: ErrorStage, error: unknown) => {
    counters.errors++;
    emitter.emit("error", { stage, error });
  };
  const active = () => state === "starting" || state === "running";
  const applier = chunkApplier({
    options: resolved as unknown as ResolvedConsumerOptions<DB, readonly never[]>,
    db,
    store,
    emitter,
    counters,
    handlers,
    running: active,
  });
  const replayDeps = {
    db,
    store,
    options: resolved as unknown as ResolvedConsumerOptions<DB, readonly never[]>,
    handlers,
  };

  const committed = (o: PartitionOffset) => {
    const p = owned.get(partitionId(o.topic, o.partition));
    const next = BigInt(o.offset);
    if (p !== undefined && (p.committed === null || p.committed < next)) p.committed = next;
  };

  /**
   * Offset commits, coalesced per partition: at most one in flight, and a chunk that committed its
   * transaction meanwhile only replaces the offset to send next. A chunk never waits for the broker's
   * answer (the group coordinator lingers a few ms per commit), so a partition goes on with its next
   * chunk at once; a crash before the commit lands redelivers chunks that the watermarks skip.
   */
  const commits = new Map<string, { next: PartitionOffset | null; inFlight: Promise<void> | null }>();
  const pump = (c: ConsumerClient, state: { next: PartitionOffset | null; inFlight: Promise<void> | null }) => {
    const offset = state.next;
    state.next = null;
    state.inFlight =
      offset === null
        ? null
        : c
            .commit(offset)
            .then(
              () => committed(offset),
              (error: unknown) => fail("commit_offsets", error),
            )
            .then(() => pump(c, state));
  };
  const queueCommit = (c: ConsumerClient, offset: PartitionOffset) => {
    const id = partitionId(offset.topic, offset.partition);
    let state = commits.get(id);
    if (state === undefined) {
      state = { next: null, inFlight: null };
      commits.set(id, state);
    }
    state.next = offset;
    if (state.inFlight === null) pump(c, state);
  };
  /** Waits until every queued commit was sent and answered (at stop, before leaving the group). */
  const drainCommits = async () => {
    for (;;) {
      const pending = [...commits.values()].flatMap((s) => (s.inFlight === null ? [] : [s.inFlight]));
      if (pending.length === 0) return;
      await Promise.all(pending);
    }
  };

  const sink = (c: ConsumerClient): ChunkSink => ({
    async applyChunk(chunk, control) {
      await applier.apply(chunk, control);
      const last = chunk.records[chunk.records.length - 1];
      if (last === undefined) return;
      // The chunk's transaction has committed (or its records were dead-lettered): now, and only
      // now, its offset. A crash before it lands redelivers the chunk, and the watermarks skip it.
      if (!control.isActive()) throw new ChunkAbandoned();
      queueCommit(c, { topic: chunk.topic, partition: chunk.partition, offset: (BigInt(last.offset) + 1n).toString() });
    },
    onCommitted: committed,
    onAssigned(partitions: readonly TopicPartition[]) {
      for (const p of partitions) {
        if (!owned.has(partitionId(p.topic, p.partition))) {
          owned.set(partitionId(p.topic, p.partition), { ...p, committed: null });
        }
      }
      emitter.emit("partitions:assigned", { partitions });
    },
    onRevoked(partitions: readonly TopicPartition[]) {
      for (const p of partitions) {
        owned.delete(partitionId(p.topic, p.partition));
        // Not ours to commit any more: its new owner reads from the last committed offset.
        const state = commits.get(partitionId(p.topic, p.partition));
        if (state !== undefined) state.next = null;
      }
      lagSnapshot = Object.freeze(lagSnapshot.filter((l) => owned.has(partitionId(l.topic, l.partition))));
      emitter.emit("partitions:revoked", { partitions });
    },
    onError(error: unknown) {
      fail("kafka", error);
    },
  });

  const readLag = async () => {
    const c = client;
    if (c === null || state !== "running") return;
    try {
      if ([...owned.values()].some((p) => p.committed === null)) {
        for (const o of await c.committedOffsets(resolved.topics)) committed(o);
      }
      const ends = await c.endOffsets(resolved.topics);
      const out: PartitionLag[] = [];
      for (const e of ends) {
        const p = owned.get(partitionId(e.topic, e.partition));
        if (p === undefined) continue;
        const end = BigInt(e.offset);
        out.push({
          topic: e.topic,
          partition: e.partition,
          committedOffset: p.committed === null ? null : p.committed.toString(),
          endOffset: e.offset,
          lag: p.committed === null ? null : Number(end > p.committed ? end - p.committed : 0n),
        });
      }
      lagSnapshot = Object.freeze(out);
      emitter.emit("lag:updated", { partitions: lagSnapshot });
    } catch (error) {
      fail("lag", error);
    }
  };

  const replay = async (id: string, actor: string): Promise<ReplayResult> => {
    const result = await replayDeadLetter(replayDeps, id, actor);
    if (result.outcome === "replayed" && result.ref !== null) {
      counters.replayed++;
      emitter.emit("dead_letter:replayed", { ...result.ref, deadLetterId: id, actor });
    }
    return result;
  };

  /** Applies the dead letters whose replay was requested from outside (the CLI, another process). */
  const pollReplays = async () => {
    if (state !== "running") return;
    try {
      for (const row of await store.listDeadLetters(db, { status: "replay_requested", limit: 100 })) {
        if (state !== "running") return;
        try {
          await replay(row.id, row.requestedBy ?? "unknown");
        } catch (error) {
          fail("replay", error);
          if (!((error as { _tag?: string })?._tag === "HandlerFailure")) {
            // Not replayable as it is (undecodable, an older one first): back to pending, with the reason.
            await db
              .transaction()
              .execute((trx) =>
                store.resolveDeadLetter(
                  trx,
                  row.id,
                  "replay_failed",
                  row.requestedBy ?? "unknown",
                  String((error as Error)?.message ?? error),
                ),
              )
              .catch((e: unknown) => fail("replay", e));
          }
        }
      }
    } catch (error) {
      fail("replay", error);
    }
  };

  const every = (ms: number, task: () => Promise<void>) => {
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      background = task().finally(() => {
        busy = false;
      });
    }, ms);
    timer.unref();
    timers.push(timer);
  };

  const start = async () => {
    if (state !== "idle") {
      throw new ConsumerStateError({ state, message: `start() on a consumer that is ${state}; create a new one` });
    }
    state = "starting";
    try {
      try {
        await sql`SELECT 1`.execute(db);
      } catch (cause) {
        throw new DatabaseUnreachableError({
          cause,
          message: `the consumer's database cannot be reached (${cause instanceof Error ? cause.message : String(cause)}): check the connection settings of the db option and that PostgreSQL is up`,
        });
      }
      await assertConsumerSchemaVersion(db, names);
      for (let attempt = 1; active(); attempt++) {
        const c = await createClient(resolved);
        client = c;
        try {
          await c.start(sink(c));
          break;
        } catch (error) {
          await c.stop().catch(() => undefined);
          client = null;
          if (!active()) break;
          const retryInMs = kafkaBackoffMs(attempt);
          emitter.emit("kafka:waiting", { attempt, retryInMs, error });
          await sleep(retryInMs);
        }
      }
    } catch (error) {
      state = "stopped";
      throw error;
    }
    if (state !== "starting") return;
    state = "running";
    every(resolved.replayPollMs, pollReplays);
    every(resolved.lagIntervalMs, readLag);
    emitter.emit("consumer:started", { groupId: resolved.groupId, topics: resolved.topics });
  };

  const stop = () => {
    if (stopped !== null) return stopped;
    if (state === "idle") {
      state = "stopped";
      stopped = Promise.resolve();
      return stopped;
    }
    state = "stopping";
    for (const t of timers) clearInterval(t);
    lagSnapshot = Object.freeze([]);
    stopped = (async () => {
      await client?.stop(drainCommits);
      await background.catch(() => undefined);
      state = "stopped";
      emitter.emit("consumer:stopped", { groupId: resolved.groupId });
    })();
    return stopped;
  };

  const log = deadLetterLog(db, store);
  const deadLetters: ConsumerDeadLetters = Object.freeze({
    ...log,
    skip: async (id: string, by: ActorOptions) => {
      const r = await log.skip(id, by);
      if (r.outcome === "skipped") {
        counters.skipped++;
        emitter.emit("dead_letter:skipped", { deadLetterId: id, actor: by.actor });
      }
      return r;
    },
    replay: async (id: string, by: ActorOptions) => replay(id, checkActor(by)),
    replayWhere: async (filter: DeadLetterFilter, by: ActorOptions) => {
      const actor = checkActor(by);
      const out: ReplayResult[] = [];
      for (const id of await store.deadLetterIds(db, filter)) out.push(await replay(id, actor));
      return out;
    },
  });

  return Object.freeze({
    options: resolved,
    start,
    stop,
    on: <K extends ConsumerEventName>(name: K, listener: ConsumerListener<K>) => emitter.on(name, listener),
    stats: (): ConsumerStats => Object.freeze({ ...counters }),
    lag: () => lagSnapshot,
    totals: () => store.totals(db),
    deadLetters,
  });
}
