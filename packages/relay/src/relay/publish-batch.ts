import { LeadershipLostError, RelayDatabaseError, describeError } from "../errors.ts";
import type { ShardLease } from "../leader/shard-lease.ts";
import { inFencedTransaction } from "../outbox-reader/fenced-transaction.ts";
import { readPendingBatch } from "../outbox-reader/outbox-reader.ts";
import type { OutboxRow } from "../outbox-reader/outbox-row.ts";
import {
  chunkBySize,
  estimateRecordBytes,
  isRecordProblem,
  RECORD_BATCH_OVERHEAD,
  toOutboundMessage,
} from "../producer/outbound-message.ts";
import { isTransactional, type OutboundMessage, ProducerSendError } from "../producer/producer-port.ts";
import { producerFor, type RelayRuntime } from "./runtime.ts";

/** What one pass of the shard loop did. Never thrown: the Effect loop decides what follows. */
export type BatchOutcome =
  | { readonly kind: "idle" }
  | { readonly kind: "worked" }
  | { readonly kind: "backoff"; readonly error: ProducerSendError }
  | { readonly kind: "lost"; readonly error: LeadershipLostError }
  | { readonly kind: "database"; readonly error: RelayDatabaseError };

interface Item {
  readonly row: OutboxRow;
  readonly message: OutboundMessage;
  /** The record's estimated size, headers included. */
  readonly bytes: number;
}

interface Failure {
  readonly row: OutboxRow;
  readonly reason: string;
}

const keyOf = (row: OutboxRow) => `${row.topic}\u0000${row.key}`;

function asSendError(error: unknown): ProducerSendError {
  return error instanceof ProducerSendError
    ? error
    : new ProducerSendError({ reason: "unknown", message: describeError(error), cause: error });
}

/**
 * One batch of a shard: read pending rows in id order (parked keys skipped), send them per topic,
 * and mark the outcome in one fenced transaction.
 *
 * - The lease is checked right before every send (self-fencing): a leader whose last good heartbeat
 *   is older than the lease sends nothing more. Each send also gets the lease as its deadline, so
 *   the adapter writes no produce request (first try or retry) later than the lease deadline minus
 *   the send margin, and abandons a send still unsettled at the deadline.
 * - A record-level failure (oversize with headers, invalid record, or a broker record error found by
 *   resending one record at a time) counts an attempt for that row and holds back every later row
 *   of its (topic, key) in this batch, so per-key order survives; other keys flow.
 * - Any other send failure stops the batch: the failed send counts as wholly unsent, rows sent before
 *   it are still marked, and the shard backs off. No attempt is counted.
 */
export async function publishBatch(rt: RelayRuntime, lease: ShardLease): Promise<BatchOutcome> {
  const started = Date.now();
  const { options } = rt;
  const read = (excludeIds: readonly string[] = []) =>
    readPendingBatch(rt.pool, rt.statements, lease.shard, options.shardCount, options.batchSize, excludeIds);
  let rows: OutboxRow[];
  try {
    // A batch read ahead while the previous one was being sent, if that one went through whole.
    const ahead = readAhead.get(lease);
    readAhead.delete(lease);
    rows = (ahead === undefined ? [] : await ahead) ?? [];
    if (rows.length === 0) rows = await read();
  } catch (error) {
    return { kind: "database", error: dbError("read a batch", error) };
  }
  if (rows.length === 0) return { kind: "idle" };
  // Read the next batch while this one is sent: pending rows of this batch are excluded, and the
  // result is used only if this batch is published whole (no record failure, no stop), because a
  // failure holds back later rows of its key, which the read-ahead may contain.
  const next = rows.length === options.batchSize ? read(rows.map((r) => r.id)).catch(() => undefined) : undefined;

  const blocked = new Set<string>();
  const failures: Failure[] = [];
  const fail = (row: OutboxRow, reason: string) => {
    failures.push({ row, reason });
    blocked.add(keyOf(row));
  };
  const byTopic = new Map<string, Item[]>();
  for (const row of rows) {
    if (blocked.has(keyOf(row))) continue;
    const topic = rt.topics.get(row.topic);
    if (topic === undefined) {
      fail(row, `unrouted-topic: "${row.topic}" is not in the relay's topics option`);
      continue;
    }
    const message = toOutboundMessage(row);
    if (isRecordProblem(message)) {
      fail(row, message.reason);
      continue;
    }
    const recordBytes = estimateRecordBytes(message);
    const bytes = RECORD_BATCH_OVERHEAD + recordBytes;
    if (bytes > topic.maxMessageBytes) {
      fail(
        row,
        `oversize: the record is about ${bytes} bytes with headers; topic max.message.bytes is ${topic.maxMessageBytes}`,
      );
      continue;
    }
    let list = byTopic.get(row.topic);
    if (list === undefined) {
      list = [];
      byTopic.set(row.topic, list);
    }
    list.push({ row, message, bytes: recordBytes });
  }

  const published: { row: OutboxRow; at: number }[] = [];
  let stop: ProducerSendError | LeadershipLostError | undefined;
  const producer = producerFor(rt, lease.shard);
  // Transactional mode: a failed send aborts the batch's transaction, so what the batch sent before
  // is unsent too, and those keys send nothing more in this batch (per-key order).
  const discardUncommitted = () => {
    if (!isTransactional(producer)) return;
    for (const p of published) blocked.add(keyOf(p.row));
    published.length = 0;
  };
  const send = async (topic: string, items: readonly Item[]) => {
    await rt.sendSerially(async () => {
      lease.assertMaySend();
      await producer.send(
        topic,
        items.map((i) => i.message),
        lease.sendDeadline,
      );
    });
    const at = Date.now();
    for (const i of items) published.push({ row: i.row, at });
  };

  /**
   * Sends; on failure the transaction's unsent work is discarded and either the record-level error
   * is returned (it counts toward the record's attempts) or `stop` is set (any other failure).
   */
  const attempt = async (topic: string, items: readonly Item[]): Promise<"sent" | "stop" | ProducerSendError> => {
    try {
      await send(topic, items);
      return "sent";
    } catch (error) {
      discardUncommitted();
      if (error instanceof LeadershipLostError) {
        stop = error;
        return "stop";
      }
      const e = asSendError(error);
      if (e.reason !== "record") {
        stop = e;
        return "stop";
      }
      return e;
    }
  };

  outer: for (const [topic, items] of byTopic) {
    const maxBytes = rt.topics.get(topic)!.maxMessageBytes;
    for (const chunk of chunkBySize(items, maxBytes)) {
      const sendable = chunk.filter((i) => !blocked.has(keyOf(i.row)));
      if (sendable.length === 0) continue;
      const result = await attempt(topic, sendable);
      if (result === "sent") continue;
      if (result === "stop") break outer;
      if (sendable.length === 1) {
        fail(sendable[0]!.row, `record: ${result.message}`);
        continue;
      }
      // A record error in a multi-record send: find the offending records one by one.
      for (const item of sendable) {
        if (blocked.has(keyOf(item.row))) continue;
        const one = await attempt(topic, [item]);
        if (one === "stop") break outer;
        if (one !== "sent") fail(item.row, `record: ${one.message}`);
      }
    }
  }

  // Transactional mode: the batch becomes visible to read_committed consumers with this commit, before
  // the rows are marked; if the commit fails or the batch stopped, the transaction is aborted.
  if (isTransactional(producer)) {
    if (stop === undefined && published.length > 0) {
      try {
        await rt.sendSerially(async () => {
          lease.assertMaySend();
          await producer.commitTransaction();
        });
      } catch (error) {
        stop = error instanceof LeadershipLostError ? error : asSendError(error);
      }
    }
    if (stop !== undefined) {
      discardUncommitted();
      await rt.sendSerially(() => producer.abortTransaction());
    }
  }

  let deadLettered: { row: OutboxRow; attempts: number; reason: string }[] = [];
  const attemptsOf = new Map<string, number>();
  if (published.length > 0 && failures.length === 0) {
    try {
      await markPublishedFenced(
        rt,
        lease,
        published.map((p) => p.row.id),
      );
    } catch (error) {
      if (error instanceof LeadershipLostError) {
        lease.markLost("fenced");
        return { kind: "lost", error };
      }
      return { kind: "database", error: dbError("mark a batch", error) };
    }
  } else if (published.length > 0 || failures.length > 0) {
    try {
      deadLettered = await inFencedTransaction(rt.pool, rt.statements, lease, async (client) => {
        if (published.length > 0) {
          const ids = published.map((p) => p.row.id);
          await client.query(
            options.publishedRows === "delete"
              ? { ...rt.statements.deletePublished, values: [ids] }
              : { ...rt.statements.markPublished, values: [ids, lease.epoch] },
          );
        }
        const dead: { row: OutboxRow; attempts: number; reason: string }[] = [];
        for (const f of failures) {
          const r = await client.query<{ attempts: number; status: string }>({
            ...rt.statements.recordFailure,
            values: [f.row.id, f.reason, options.maxAttempts],
          });
          const result = r.rows[0];
          if (result === undefined) continue;
          attemptsOf.set(f.row.id, result.attempts);
          if (result.status === "dead_lettered") {
            await client.query({ ...rt.statements.parkKey, values: [f.row.topic, f.row.key, f.row.id, f.reason] });
            await client.query({
              ...rt.statements.logDeadLetter,
              values: [f.row.id, f.row.topic, f.row.key, "dead_lettered", f.reason, options.instanceId],
            });
            dead.push({ row: f.row, attempts: result.attempts, reason: f.reason });
          }
        }
        return dead;
      });
    } catch (error) {
      if (error instanceof LeadershipLostError) {
        lease.markLost("fenced");
        return { kind: "lost", error };
      }
      return { kind: "database", error: dbError("mark a batch", error) };
    }
  }

  const { shard, epoch } = lease;
  if (published.length > 0) {
    const counts: Record<string, number> = {};
    for (const p of published) counts[p.row.topic] = (counts[p.row.topic] ?? 0) + 1;
    rt.events.emit("batch:published", {
      shard,
      epoch,
      count: published.length,
      byTopic: counts,
      durationMs: Date.now() - started,
      commitToPublishMs: published.map((p) => p.at - p.row.createdAtMs),
    });
  }
  for (const f of failures) {
    const attempts = attemptsOf.get(f.row.id);
    if (attempts === undefined) continue;
    rt.events.emit("record:failed", { shard, outboxId: f.row.id, topic: f.row.topic, attempts, reason: f.reason });
  }
  for (const d of deadLettered) {
    rt.events.emit("dead-lettered", { shard, outboxId: d.row.id, topic: d.row.topic, reason: d.reason });
    rt.events.emit("key:parked", { topic: d.row.topic, outboxId: d.row.id });
  }
  if (stop instanceof LeadershipLostError) return { kind: "lost", error: stop };
  if (stop !== undefined) return { kind: "backoff", error: stop };
  if (next !== undefined && failures.length === 0 && published.length === rows.length) readAhead.set(lease, next);
  return { kind: "worked" };
}

/**
 * The batch read ahead for a lease, consumed by its next `publishBatch`. Keyed by the lease object,
 * so it lives exactly as long as one leadership term and a new term never sees an old read.
 */
const readAhead = new WeakMap<ShardLease, Promise<OutboxRow[] | undefined>>();

/**
 * Marks rows published (or deletes them, with `publishedRows: "delete"`) in one fenced statement;
 * throws {@link LeadershipLostError} when fenced.
 */
async function markPublishedFenced(rt: RelayRuntime, lease: ShardLease, ids: readonly string[]): Promise<void> {
  const r = await rt.pool.query<{ token: string | null; marked: number }>(
    rt.options.publishedRows === "delete"
      ? { ...rt.statements.deletePublishedFenced, values: [ids, lease.shard, lease.token] }
      : { ...rt.statements.markPublishedFenced, values: [ids, lease.epoch, lease.shard, lease.token] },
  );
  if (r.rows[0]?.token !== lease.token) {
    throw new LeadershipLostError({
      shard: lease.shard,
      epoch: lease.epoch,
      reason: "fenced",
      message: `shard ${lease.shard}: another instance holds it now (epoch ${lease.epoch} is stale)`,
    });
  }
}

function dbError(operation: string, error: unknown): RelayDatabaseError {
  return new RelayDatabaseError({
    operation,
    message: `could not ${operation}: ${describeError(error)}`,
    cause: error,
  });
}
