import { randomUUID } from "node:crypto";
import type { Admin, Kafka } from "kafkajs";
import { EnvironmentError } from "../errors.ts";
import type { AuditMessage, PartitionRange } from "./topic-audit.ts";

/**
 * The offsets to read: for each partition its log start offset and its end offset under
 * `read_committed` (kafkajs's ListOffsets default isolation: the last stable offset, so an open
 * producer transaction does not leave the reader waiting).
 */
export async function readPartitionRanges(admin: Admin, topic: string): Promise<PartitionRange[]> {
  const offsets = await admin.fetchTopicOffsets(topic);
  return offsets
    .map((o) => ({ partition: o.partition, low: o.low, high: o.high }))
    .sort((a, b) => a.partition - b.partition);
}

/**
 * Reads every partition of `topic` from its earliest offset to `ranges[p].high` with
 * `read_committed` (records of aborted transactions are never delivered), through a consumer group
 * of its own that commits nothing and is deleted afterwards. Records at or after the end offsets
 * (written since) are ignored, so the read is a consistent snapshot. A partition counts as read when
 * its fetch position passes the end offset, control records (transaction markers) included, which
 * kafkajs reports in its batch events even when a batch held nothing but them.
 */
export async function readTopicToEnd(options: {
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly topic: string;
  readonly ranges: readonly PartitionRange[];
  readonly timeoutMs: number;
  readonly onMessage: (m: AuditMessage) => void;
}): Promise<void> {
  const ends = new Map(options.ranges.map((r) => [r.partition, BigInt(r.high)]));
  const unread = new Set(options.ranges.filter((r) => BigInt(r.high) > BigInt(r.low)).map((r) => r.partition));
  if (unread.size === 0) return;
  const groupId = `eventlane-verify-${randomUUID()}`;
  const consumer = options.kafka.consumer({
    groupId,
    readUncommitted: false,
    maxWaitTimeInMs: 250,
    allowAutoTopicCreation: false,
    retry: { retries: 5 },
  });
  let finish: (error?: unknown) => void = () => undefined;
  const finished = new Promise<void>((resolve, reject) => {
    finish = (error) => (error === undefined ? resolve() : reject(error));
  });
  const progress = (partition: number, lastOffset: string) => {
    const end = ends.get(partition);
    if (end !== undefined && BigInt(lastOffset) + 1n >= end && unread.delete(partition) && unread.size === 0) {
      finish();
    }
  };
  consumer.on(consumer.events.END_BATCH_PROCESS, (e) => progress(e.payload.partition, e.payload.lastOffset));
  consumer.on(consumer.events.CRASH, (e) => {
    if (!e.payload.restart) finish(e.payload.error);
  });
  const timer = setTimeout(() => {
    finish(
      new EnvironmentError({
        kind: "timeout",
        message: `topic ${options.topic}: not read to its end offsets within ${Math.round(options.timeoutMs / 1000)} s (partitions still unread: ${[...unread].join(", ")}); raise --timeout`,
      }),
    );
  }, options.timeoutMs);
  // Both are awaited below; a timeout while connecting must not surface as an unhandled rejection.
  finished.catch(() => undefined);
  const started = (async () => {
    await consumer.connect();
    await consumer.subscribe({ topic: options.topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const end = ends.get(batch.partition) ?? 0n;
        for (const m of batch.messages) {
          if (BigInt(m.offset) >= end) break;
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(m.headers ?? {})) {
            if (v === undefined) continue;
            headers[k] = (Array.isArray(v) ? v[0] : v)?.toString() ?? "";
          }
          options.onMessage({
            partition: batch.partition,
            offset: m.offset,
            key: m.key === null ? null : m.key.toString(),
            timestamp: Number(m.timestamp),
            headers,
          });
        }
      },
    });
  })();
  started.catch(() => undefined);
  try {
    await Promise.race([started, finished]);
    await finished;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect().catch(() => undefined);
    // It committed nothing; remove the empty group so verify runs leave no trace on the cluster.
    await options.admin.deleteGroups([groupId]).catch(() => undefined);
  }
}
