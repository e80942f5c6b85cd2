import type { DomainEvent, EventDefinition } from "@eventlane/core";
import type { Consumer as KafkaConsumer, EachMessagePayload } from "kafkajs";
import { ConsumerStateError, HandlerFailure, isTransientDatabaseError } from "../errors.ts";
import {
  ConsumerEmitter,
  type ConsumerEventName,
  type ConsumerListener,
  type ConsumerStats,
  type RecordRef,
} from "../events.ts";
import { type DeadLetterRow, type InboxTotals, inboxStore } from "../inbox/inbox-store.ts";
import { decodeMessage, readEnvelope } from "../message/decode-message.ts";
import { type ConsumerOptions, type ResolvedConsumerOptions, resolveConsumerOptions } from "../options.ts";
import { assertConsumerSchemaVersion } from "../schema/migrations.ts";

/** A typed consumer. Create it with {@link createConsumer}; it holds no connection until `start()`. */
export interface Consumer<DB, Defs extends readonly EventDefinition[]> {
  readonly options: ResolvedConsumerOptions<DB, Defs>;
  /**
   * Checks the consumer schema version, connects, subscribes and starts consuming. Resolves once
   * the group is joined and running. Throws `SchemaVersionError` when the migrations are missing.
   */
  start(): Promise<void>;
  /**
   * Stops fetching, lets the record in flight finish (its transaction and offset commit) and leaves
   * the group. Idempotent.
   */
  stop(): Promise<void>;
  /** Subscribes to a runtime event; returns the unsubscribe function. */
  on<K extends ConsumerEventName>(name: K, listener: ConsumerListener<K>): () => void;
  /** Counters of this instance since it was created. */
  stats(): ConsumerStats;
  /** Durable totals from the consumer's database: keys seen, duplicates skipped, gaps, dead letters. */
  totals(): Promise<InboxTotals>;
  /** The dead letters of this consumer, oldest first. */
  deadLetters(limit?: number): Promise<DeadLetterRow[]>;
}

type Outcome =
  | { readonly kind: "applied" | "ignored"; readonly gap: Gap | null }
  | { readonly kind: "duplicate"; readonly watermark: number | null }
  | { readonly kind: "refused"; readonly gap: Gap };

interface Gap {
  readonly expected: number;
  readonly actual: number;
}

class StopRequested extends Error {}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
// Backoff (ms): 100, 200, 400, 800, 1600, 3200, 5000, 5000, ...
const backoffMs = (attempt: number) => Math.min(5_000, 100 * 2 ** Math.min(attempt - 1, 10));

/**
 * Creates a typed consumer: it decodes each record with the event definitions (upcasting from the
 * schema-version header), applies it exactly once by running the handler and the key's watermark
 * update in one transaction of the consumer's database, and commits the Kafka offset only after
 * that transaction commits. Undecodable and unknown records are dead-lettered to the
 * `dead_letters` table with the reason, and the partition keeps flowing.
 *
 * ```ts
 * const consumer = createConsumer({
 *   kafka, db, groupId: "email",
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
  const store = inboxStore(names, resolved.name);
  const emitter = new ConsumerEmitter();
  const counters = {
    received: 0,
    applied: 0,
    ignored: 0,
    duplicates: 0,
    deadLettered: 0,
    gaps: 0,
    handlerFailures: 0,
    errors: 0,
  };
  let state: "idle" | "starting" | "running" | "stopping" | "stopped" = "idle";
  let kafkaConsumer: KafkaConsumer | null = null;
  let stopped: Promise<void> | null = null;

  const fail = (stage: "apply" | "dead_letter" | "commit_offsets" | "kafka", error: unknown) => {
    counters.errors++;
    emitter.emit("error", { stage, error });
  };

  /** Runs `fn` until it succeeds, backing off on errors, until the consumer stops. */
  const persist = async (stage: "dead_letter", fn: () => Promise<void>, heartbeat: () => Promise<void>) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        fail(stage, error);
        if (state !== "running") throw new StopRequested();
        await sleep(backoffMs(attempt));
        await heartbeat().catch(() => undefined);
      }
    }
  };

  const processRecord = async ({ topic, partition, message, heartbeat }: EachMessagePayload) => {
    counters.received++;
    const { envelope, invalid } = readEnvelope(message);
    const ref: RecordRef = {
      topic,
      partition,
      offset: message.offset,
      key: envelope.key,
      eventId: envelope.eventId,
      eventType: envelope.eventType,
    };
    const decoded = decodeMessage(envelope, invalid, message.value, resolved.definitions);
    const deadLetter = (reason: Parameters<typeof store.deadLetter>[1]["reason"], detail: string) =>
      persist(
        "dead_letter",
        () =>
          db.transaction().execute((trx) =>
            store.deadLetter(trx, {
              topic,
              partition,
              offset: message.offset,
              envelope,
              value: message.value,
              reason,
              detail,
            }),
          ),
        heartbeat,
      ).then(() => {
        counters.deadLettered++;
        emitter.emit("event:dead_lettered", { ...ref, reason, detail });
      });

    if (!decoded.ok) {
      await deadLetter(decoded.reason, decoded.detail);
      return;
    }
    const key = envelope.key as string;
    const eventId = envelope.eventId as string;
    const { position, positionKind } = envelope;
    const handler = resolved.handlers.get(decoded.definition.type);
    const event: DomainEvent = { type: decoded.definition.type, data: decoded.data };

    for (let attempt = 1; ; attempt++) {
      let outcome: Outcome;
      try {
        outcome = await db.transaction().execute(async (trx): Promise<Outcome> => {
          let gap: Gap | null = null;
          if (position !== null && positionKind !== null) {
            const watermark = await store.lockWatermark(trx, topic, key, positionKind);
            if (position <= watermark) {
              await store.countDuplicate(trx, topic, key, positionKind);
              return { kind: "duplicate", watermark };
            }
            if (position > watermark + 1) {
              gap = { expected: watermark + 1, actual: position };
              if (resolved.onGap === "refuse") {
                await store.countRefusedGap(trx, topic, key, positionKind);
                await store.deadLetter(trx, {
                  topic,
                  partition,
                  offset: message.offset,
                  envelope,
                  value: message.value,
                  reason: "gap_refused",
                  detail: `key ${JSON.stringify(key)}: expected ${positionKind} ${gap.expected}, got ${gap.actual}`,
                });
                return { kind: "refused", gap };
              }
            }
          } else if (!(await store.claimEventId(trx, topic, eventId))) {
            return { kind: "duplicate", watermark: null };
          }
          if (handler !== undefined) {
            try {
              await handler(event, {
                trx,
                topic,
                partition,
                offset: message.offset,
                key,
                eventId,
                storedSchemaVersion: envelope.schemaVersion as number,
                position,
                positionKind,
                aggregateType: envelope.aggregateType,
                aggregateId: envelope.aggregateId,
                headers: envelope.headers,
              });
            } catch (cause) {
              throw new HandlerFailure({
                eventType: event.type,
                cause,
                message: `handler of "${event.type}" failed: ${cause instanceof Error ? cause.message : String(cause)}`,
              });
            }
          }
          if (position !== null && positionKind !== null) {
            await store.advanceWatermark(trx, topic, key, positionKind, position, gap !== null);
          }
          return { kind: handler === undefined ? "ignored" : "applied", gap };
        });
      } catch (error) {
        const handlerError = error instanceof HandlerFailure && !isTransientDatabaseError(error.cause);
        if (handlerError) {
          counters.handlerFailures++;
          emitter.emit("handler:failed", { ...ref, attempt, error: error.cause });
          if (attempt >= resolved.handlerAttempts) {
            await deadLetter("handler_failed", error.message);
            return;
          }
        } else {
          fail("apply", error);
        }
        if (state !== "running") throw new StopRequested();
        await sleep(backoffMs(attempt));
        await heartbeat().catch(() => undefined);
        continue;
      }
      if (outcome.kind === "duplicate") {
        counters.duplicates++;
        emitter.emit("event:duplicate", { ...ref, position, watermark: outcome.watermark });
        return;
      }
      if (outcome.gap !== null && positionKind !== null) {
        counters.gaps++;
        emitter.emit("gap:detected", {
          ...ref,
          kind: positionKind,
          ...outcome.gap,
          action: outcome.kind === "refused" ? "refused" : "applied",
        });
      }
      if (outcome.kind === "refused") {
        counters.deadLettered++;
        emitter.emit("event:dead_lettered", {
          ...ref,
          reason: "gap_refused",
          detail: `expected ${outcome.gap.expected}, got ${outcome.gap.actual}`,
        });
      } else if (outcome.kind === "ignored") {
        counters.ignored++;
        emitter.emit("event:ignored", ref);
      } else {
        counters.applied++;
        emitter.emit("event:applied", { ...ref, position });
      }
      return;
    }
  };

  const start = async () => {
    if (state !== "idle") {
      throw new ConsumerStateError({ state, message: `start() on a consumer that is ${state}; create a new one` });
    }
    state = "starting";
    try {
      await assertConsumerSchemaVersion(db, names);
      const consumer = resolved.kafka.consumer({
        groupId: resolved.groupId,
        readUncommitted: resolved.isolation === "read_uncommitted",
        sessionTimeout: resolved.sessionTimeoutMs,
        heartbeatInterval: Math.min(3_000, Math.floor(resolved.sessionTimeoutMs / 3)),
        maxWaitTimeInMs: resolved.maxWaitTimeMs,
      });
      kafkaConsumer = consumer;
      consumer.on(consumer.events.CRASH, (e) => fail("kafka", e.payload.error));
      await consumer.connect();
      await consumer.subscribe({ topics: [...resolved.topics], fromBeginning: resolved.fromBeginning });
      const joined = new Promise<void>((resolve) => {
        const off = consumer.on(consumer.events.GROUP_JOIN, () => {
          off();
          resolve();
        });
      });
      // Running before the first record can arrive, so retry loops see a running consumer.
      state = "running";
      await consumer.run({
        autoCommit: false,
        partitionsConsumedConcurrently: resolved.partitionsConsumedConcurrently,
        eachMessage: async (payload) => {
          await processRecord(payload);
          // The record's transaction has committed (or it was dead-lettered): now, and only now,
          // its offset. A crash before this line redelivers the record, and the watermark skips it.
          try {
            await consumer.commitOffsets([
              {
                topic: payload.topic,
                partition: payload.partition,
                offset: (BigInt(payload.message.offset) + 1n).toString(),
              },
            ]);
          } catch (error) {
            fail("commit_offsets", error);
          }
        },
      });
      await joined;
      emitter.emit("consumer:started", { groupId: resolved.groupId, topics: resolved.topics });
    } catch (error) {
      state = "stopping";
      await kafkaConsumer?.disconnect().catch(() => undefined);
      state = "stopped";
      throw error;
    }
  };

  const stop = () => {
    if (stopped !== null) return stopped;
    if (state === "idle") {
      state = "stopped";
      stopped = Promise.resolve();
      return stopped;
    }
    state = "stopping";
    stopped = (async () => {
      await kafkaConsumer?.disconnect();
      state = "stopped";
      emitter.emit("consumer:stopped", { groupId: resolved.groupId });
    })();
    return stopped;
  };

  return Object.freeze({
    options: resolved,
    start,
    stop,
    on: <K extends ConsumerEventName>(name: K, listener: ConsumerListener<K>) => emitter.on(name, listener),
    stats: (): ConsumerStats => Object.freeze({ ...counters }),
    totals: () => store.totals(db),
    deadLetters: (limit = 100) => store.deadLetters(db, limit),
  });
}
