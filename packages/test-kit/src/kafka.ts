import { Kafka, logLevel, type Admin, type KafkaMessage } from "kafkajs";
import { kafkaBrokers, uniqueSuffix } from "./env.ts";

/** A kafkajs client for tests against the shared broker (or `brokers`). Logging is off. */
export function testKafka(brokers: readonly string[] = kafkaBrokers): Kafka {
  return new Kafka({
    clientId: "eventlane-test",
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
    retry: { retries: 8 },
  });
}

/** A topic name unique to one test file. */
export function uniqueTopic(prefix: string): string {
  return `${prefix}.${uniqueSuffix()}`;
}

export interface TopicSpec {
  readonly topic: string;
  readonly partitions?: number;
  readonly config?: Readonly<Record<string, string>>;
}

async function withAdmin<T>(brokers: readonly string[], fn: (admin: Admin) => Promise<T>): Promise<T> {
  const admin = testKafka(brokers).admin();
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.disconnect();
  }
}

function createOnce(admin: Admin, specs: readonly TopicSpec[]): Promise<boolean> {
  return admin.createTopics({
    waitForLeaders: true,
    topics: specs.map((s) => ({
      topic: s.topic,
      numPartitions: s.partitions ?? 3,
      replicationFactor: 1,
      configEntries: Object.entries(s.config ?? {}).map(([name, value]) => ({ name, value })),
    })),
  });
}

/** Creates topics (the broker has auto-creation off) and waits until they have leaders. */
export async function createTopics(
  specs: readonly TopicSpec[],
  brokers: readonly string[] = kafkaBrokers,
): Promise<void> {
  await withAdmin(brokers, async (admin) => {
    // kafkajs's wait for leaders gives up when the broker still answers UNKNOWN_TOPIC_OR_PARTITION
    // for a topic it has just created: the ListOffsets wait below covers that moment instead.
    await createOnce(admin, specs).catch((error: unknown) => {
      const e = error as { type?: unknown; originalError?: { type?: unknown } };
      const type = e.type ?? e.originalError?.type;
      if (type !== "UNKNOWN_TOPIC_OR_PARTITION" && type !== "LEADER_NOT_AVAILABLE") throw error;
    });
    // Metadata can name a leader a moment before that broker hosts the partition (a produce then
    // fails with UNKNOWN_TOPIC_OR_PARTITION): wait until every partition answers a ListOffsets.
    for (const s of specs) {
      for (let attempt = 1; ; attempt++) {
        try {
          const offsets = await admin.fetchTopicOffsets(s.topic);
          if (offsets.length === (s.partitions ?? 3)) break;
          if (attempt >= 50)
            throw new Error(`topic ${s.topic}: ${offsets.length} partitions answer, not ${s.partitions ?? 3}`);
        } catch (error) {
          if (attempt >= 50) throw error;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
}

/** Deletes topics; errors are ignored (the broker may already be gone). */
export async function deleteTopics(
  topics: readonly string[],
  brokers: readonly string[] = kafkaBrokers,
): Promise<void> {
  await withAdmin(brokers, (admin) => admin.deleteTopics({ topics: [...topics] })).catch(() => undefined);
}

export interface ReadMessage {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: string | null;
  readonly value: string | null;
  readonly headers: Readonly<Record<string, string>>;
}

function decode(topic: string, partition: number, m: KafkaMessage): ReadMessage {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.headers ?? {})) {
    if (v !== undefined) headers[k] = Array.isArray(v) ? String(v[0]) : String(v);
  }
  return {
    topic,
    partition,
    offset: m.offset,
    key: m.key?.toString() ?? null,
    value: m.value?.toString() ?? null,
    headers,
  };
}

/**
 * Reads a topic from the beginning until `until(messages)` holds or `timeoutMs` passes, and returns
 * every message read, in per-partition offset order. Uses a fresh consumer group.
 */
export async function readTopic(
  topic: string,
  until: (messages: readonly ReadMessage[]) => boolean,
  options: { timeoutMs?: number; brokers?: readonly string[]; isolation?: "read_committed" | "read_uncommitted" } = {},
): Promise<ReadMessage[]> {
  const kafka = testKafka(options.brokers);
  const consumer = kafka.consumer({
    groupId: `test-reader-${uniqueSuffix()}`,
    readUncommitted: options.isolation === "read_uncommitted",
    maxWaitTimeInMs: 100,
  });
  const messages: ReadMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, options.timeoutMs ?? 20_000);
      const check = () => {
        if (until(messages)) {
          clearTimeout(timer);
          resolve();
        }
      };
      consumer
        .run({
          eachMessage: async ({ topic: t, partition, message }) => {
            messages.push(decode(t, partition, message));
            check();
          },
        })
        .catch(reject);
      check();
    });
  } finally {
    await consumer.disconnect();
  }
  return messages;
}
