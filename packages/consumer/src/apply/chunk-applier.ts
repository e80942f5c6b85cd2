import type { EventDefinition } from "@eventlane/core";
import type { Kysely } from "kysely";
import type { ChunkControl, ConsumedRecord, PartitionChunk } from "../client/consumer-client.ts";
import { isTransientDatabaseError } from "../errors.ts";
import type { ConsumerEmitter, RecordRef } from "../events.ts";
import { decodeMessage, readEnvelope } from "../message/decode-message.ts";
import type { ResolvedConsumerOptions } from "../options.ts";
import type { ConsumerStore } from "../store/consumer-store.ts";
import {
  type ChunkPlan,
  type DecodedRecord,
  inboxEventIds,
  planChunk,
  type Step,
  watermarkKeys,
} from "./plan-chunk.ts";
import { applyItem, ChunkHandlerFailure, type Handlers, handles, runHandlers } from "./run-handlers.ts";

/** The chunk was given up because its partition was revoked or the consumer is stopping. */
export class ChunkAbandoned extends Error {
  constructor() {
    super("chunk abandoned: partition revoked or consumer stopping");
  }
}

/** Counters the applier moves (owned by the consumer). */
export interface ApplyCounters {
  received: number;
  chunks: number;
  applied: number;
  ignored: number;
  duplicates: number;
  deadLettered: number;
  gaps: number;
  handlerFailures: number;
  errors: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
// Backoff (ms): 100, 200, 400, 800, 1600, 3200, 5000, 5000, ...
export const backoffMs = (attempt: number) => Math.min(5_000, 100 * 2 ** Math.min(attempt - 1, 10));
const DEADLOCK = "40P01";

/** Reads and decodes one record: pure, once per delivery. */
export function decodeRecord(
  topic: string,
  partition: number,
  record: ConsumedRecord,
  definitions: ReadonlyMap<string, EventDefinition>,
): DecodedRecord {
  const { envelope, invalid } = readEnvelope(record);
  return {
    topic,
    partition,
    offset: record.offset,
    value: record.value,
    envelope,
    decoded: decodeMessage(envelope, invalid, record.value, definitions),
  };
}

export const refOf = (r: DecodedRecord): RecordRef => ({
  topic: r.topic,
  partition: r.partition,
  offset: r.offset,
  key: r.envelope.key,
  eventId: r.envelope.eventId,
  eventType: r.envelope.eventType,
});

export interface ChunkApplierDeps<DB> {
  readonly options: ResolvedConsumerOptions<DB, readonly never[]>;
  readonly db: Kysely<DB>;
  readonly store: ConsumerStore;
  readonly emitter: ConsumerEmitter;
  readonly counters: ApplyCounters;
  readonly handlers: Handlers<DB>;
  /** False once the consumer stops: retry loops end. */
  readonly running: () => boolean;
}

/**
 * Applies chunks of one partition's records exactly once: one transaction per chunk that locks the
 * chunk's watermarks in one statement, decides duplicates and gaps in memory, runs the handlers in
 * offset order on that transaction and advances every watermark in one statement. A handler that
 * throws is isolated: the chunk is rolled back, the records before it are applied again as a chunk
 * (their handlers run a second time, inside a transaction that was rolled back the first time), the
 * failing record alone is retried up to `handlerAttempts` and dead-lettered, and the rest go on as a
 * new chunk. Transient database errors are retried with backoff without counting as attempts; after
 * a deadlock the chunk is halved.
 */
export function chunkApplier<DB>(deps: ChunkApplierDeps<DB>) {
  const { options, db, store, emitter, counters, handlers } = deps;

  const fail = (stage: "apply" | "dead_letter", error: unknown) => {
    counters.errors++;
    emitter.emit("error", { stage, error });
  };

  const guard = (control: ChunkControl) => {
    if (!control.isActive() || !deps.running()) throw new ChunkAbandoned();
  };

  const pause = async (attempt: number, control: ChunkControl) => {
    await sleep(backoffMs(attempt));
    await control.heartbeat().catch(() => undefined);
    guard(control);
  };

  /** The chunk's transaction: lock, plan, run the handlers, advance, dead letters. */
  const runChunk = (records: readonly DecodedRecord[]): Promise<ChunkPlan> =>
    db.transaction().execute(async (trx) => {
      const first = records[0] as DecodedRecord;
      const watermarks = await store.lockWatermarks(trx, watermarkKeys(records));
      const parked =
        options.onDeadLetter === "park_key"
          ? await store.parkedKeys(trx, first.topic, [
              ...new Set(records.flatMap((r) => (r.envelope.key === null ? [] : [r.envelope.key]))),
            ])
          : new Set<string>();
      const claimed = await store.claimEventIds(trx, first.topic, inboxEventIds(records, parked));
      const plan = planChunk({
        records,
        watermarks,
        claimed,
        parked,
        onGap: options.onGap,
        onDeadLetter: options.onDeadLetter,
      });
      const items = plan.steps.flatMap((s) =>
        s.kind === "apply" && handles(handlers, s.record) ? [applyItem(s.record, s.index, null)] : [],
      );
      await runHandlers(handlers, trx, items, first.topic, first.partition);
      await store.advanceWatermarks(trx, plan.advances, watermarks);
      await store.insertDeadLetters(
        trx,
        plan.steps.flatMap((s) =>
          s.kind === "dead_letter"
            ? [
                {
                  topic: s.record.topic,
                  partition: s.record.partition,
                  offset: s.record.offset,
                  envelope: s.record.envelope,
                  value: s.record.value,
                  reason: s.reason,
                  detail: s.detail,
                },
              ]
            : [],
        ),
      );
      return plan;
    });

  /** Emitted after the chunk's transaction committed (and before its offset is committed). */
  const report = (steps: readonly Step[]) => {
    for (const s of steps) {
      const { position, positionKind } = s.record.envelope;
      if (s.kind === "duplicate") {
        counters.duplicates++;
        if (emitter.listens("event:duplicate")) {
          emitter.emit("event:duplicate", { ...refOf(s.record), position, watermark: s.watermark });
        }
        continue;
      }
      if (s.gap !== null && positionKind !== null) {
        counters.gaps++;
        emitter.emit("gap:detected", {
          ...refOf(s.record),
          kind: positionKind,
          ...s.gap,
          action: s.kind === "dead_letter" ? "refused" : "applied",
        });
      }
      if (s.kind === "dead_letter") {
        counters.deadLettered++;
        emitter.emit("event:dead_lettered", { ...refOf(s.record), reason: s.reason, detail: s.detail });
      } else if (!handles(handlers, s.record)) {
        counters.ignored++;
        if (emitter.listens("event:ignored")) emitter.emit("event:ignored", refOf(s.record));
      } else {
        counters.applied++;
        if (emitter.listens("event:applied")) emitter.emit("event:applied", { ...refOf(s.record), position });
      }
    }
  };

  /** Stores a handler-failed record as a dead letter, retrying database errors until it is stored. */
  const deadLetterFailed = async (record: DecodedRecord, detail: string, control: ChunkControl) => {
    for (let attempt = 1; ; attempt++) {
      guard(control);
      try {
        const row = {
          topic: record.topic,
          partition: record.partition,
          offset: record.offset,
          envelope: record.envelope,
          value: record.value,
          reason: "handler_failed" as const,
          detail,
        };
        await db.transaction().execute((trx) => store.insertDeadLetters(trx, [row]));
        counters.deadLettered++;
        emitter.emit("event:dead_lettered", { ...refOf(record), reason: "handler_failed", detail });
        return;
      } catch (error) {
        fail("dead_letter", error);
        await pause(attempt, control);
      }
    }
  };

  /** One record alone, from handler attempt `attempt` on; dead-lettered after the last. */
  const applySingle = async (
    record: DecodedRecord,
    firstAttempt: number,
    lastFailure: string,
    control: ChunkControl,
  ) => {
    let failure = lastFailure;
    let transient = 0;
    for (let attempt = firstAttempt; attempt <= options.handlerAttempts; ) {
      guard(control);
      try {
        report((await runChunk([record])).steps);
        return;
      } catch (error) {
        if (error instanceof ChunkHandlerFailure && !isTransientDatabaseError(error.failure.cause)) {
          counters.handlerFailures++;
          emitter.emit("handler:failed", { ...refOf(record), attempt, error: error.failure.cause });
          failure = error.failure.message;
          attempt++;
          if (attempt <= options.handlerAttempts) await pause(attempt - 1, control);
        } else {
          fail("apply", error instanceof ChunkHandlerFailure ? error.failure.cause : error);
          await pause(++transient, control);
        }
      }
    }
    await deadLetterFailed(record, failure, control);
  };

  /** Applies consecutive records of one partition; see {@link chunkApplier}. */
  const applyRecords = async (records: readonly DecodedRecord[], control: ChunkControl): Promise<void> => {
    if (records.length === 0) return;
    for (let attempt = 1; ; attempt++) {
      guard(control);
      try {
        const plan = await runChunk(records);
        counters.chunks++;
        report(plan.steps);
        return;
      } catch (error) {
        if (error instanceof ChunkHandlerFailure && !isTransientDatabaseError(error.failure.cause)) {
          const { from, to, single } = error;
          if (single) {
            counters.handlerFailures++;
            emitter.emit("handler:failed", {
              ...refOf(records[from] as DecodedRecord),
              attempt: 1,
              error: error.failure.cause,
            });
          }
          await applyRecords(records.slice(0, from), control);
          for (let i = from; i <= to; i++) {
            await applySingle(records[i] as DecodedRecord, single ? 2 : 1, error.failure.message, control);
          }
          await applyRecords(records.slice(to + 1), control);
          return;
        }
        const cause = error instanceof ChunkHandlerFailure ? error.failure.cause : error;
        fail("apply", cause);
        if ((cause as { code?: unknown } | null)?.code === DEADLOCK && records.length > 1) {
          const half = Math.ceil(records.length / 2);
          await applyRecords(records.slice(0, half), control);
          await applyRecords(records.slice(half), control);
          return;
        }
        await pause(attempt, control);
      }
    }
  };

  return {
    /** Decodes and applies one chunk; resolves once every record is applied or dead-lettered. */
    async apply(chunk: PartitionChunk, control: ChunkControl): Promise<void> {
      counters.received += chunk.records.length;
      const records = chunk.records.map((r) => decodeRecord(chunk.topic, chunk.partition, r, options.definitions));
      await applyRecords(records, control);
    },
  };
}

export type ChunkApplier = ReturnType<typeof chunkApplier>;
