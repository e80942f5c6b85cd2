import { murmur2, positiveModulo } from "@eventlane/core/internal";
import { createTopics, deleteTopics, kafkaBrokers, readTopic, uniqueTopic } from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OutboundMessage, type ProducerPort, resolveRelayOptions } from "../src/index.ts";
import { KafkaJsProducer } from "../src/kafkajs.ts";
import { PlatformaticProducer } from "../src/producer/platformatic-producer.ts";

// Not a power of two: `(h >>> 0) % 7` and `(h & 0x7fffffff) % 7` disagree for about half of all keys,
// so a partitioner that is merely "murmur2-based" without Kafka's toPositive fails here.
const PARTITIONS = 7;
const KEY_COUNT = 2000;

/** Keys of every length mod 4 (murmur2's tail), ASCII and multi-byte UTF-8, and UUID-like ones. */
function testKeys(): string[] {
  const keys = new Set<string>();
  for (let i = 0; keys.size < KEY_COUNT; i++) {
    switch (i % 5) {
      case 0:
        keys.add(`order-${i}`);
        break;
      case 1:
        keys.add(`заказ-${i}-ü`);
        break;
      case 2:
        keys.add(`🙂${"x".repeat(i % 7)}${i}`);
        break;
      case 3:
        keys.add(`${(i * 2654435761).toString(16).padStart(8, "0")}-4f1c-9a2b-${i.toString(16).padStart(12, "0")}`);
        break;
      default:
        keys.add(String(i));
    }
  }
  return [...keys];
}

describe("partitioning by key, across producer adapters", () => {
  const topics = {
    kafkajs: uniqueTopic("relay.partitioning.kafkajs"),
    platformatic: uniqueTopic("relay.partitioning.plt"),
  };
  const kafka = resolveRelayOptions({
    connectionString: "postgres://unused",
    kafka: { brokers: kafkaBrokers },
    topics: ["unused"],
  }).kafka!;
  const producers: Record<keyof typeof topics, ProducerPort> = {
    kafkajs: new KafkaJsProducer(kafka),
    platformatic: new PlatformaticProducer(kafka),
  };
  const keys = testKeys();

  beforeAll(async () => {
    await createTopics(Object.values(topics).map((topic) => ({ topic, partitions: PARTITIONS })));
  });
  afterAll(async () => {
    for (const p of Object.values(producers)) await p.disconnect();
    await deleteTopics(Object.values(topics));
  });

  it(`puts each of ${KEY_COUNT} keys on the same partition with both adapters, Kafka's murmur2 partition`, async () => {
    const messages: OutboundMessage[] = keys.map((key) => ({ key, value: key, headers: {} }));
    const partitionOf: Record<string, Map<string, number>> = {};
    for (const [client, producer] of Object.entries(producers) as [keyof typeof topics, ProducerPort][]) {
      await producer.connect({ onConnected: () => undefined, onDisconnected: () => undefined });
      for (let i = 0; i < messages.length; i += 500) await producer.send(topics[client], messages.slice(i, i + 500));
      const read = await readTopic(topics[client], (m) => m.length >= KEY_COUNT, { timeoutMs: 30_000 });
      expect(read, client).toHaveLength(KEY_COUNT);
      partitionOf[client] = new Map(read.map((m) => [m.key!, m.partition]));
      expect(partitionOf[client]!.size, client).toBe(KEY_COUNT);
    }

    const mismatches: string[] = [];
    const used = new Set<number>();
    for (const key of keys) {
      const expected = positiveModulo(murmur2(key), PARTITIONS);
      const kafkajs = partitionOf.kafkajs!.get(key);
      const platformatic = partitionOf.platformatic!.get(key);
      used.add(expected);
      if (kafkajs !== expected || platformatic !== expected) {
        mismatches.push(
          `${JSON.stringify(key)}: murmur2 ${expected}, kafkajs ${kafkajs}, platformatic ${platformatic}`,
        );
      }
    }
    expect(mismatches.slice(0, 10)).toEqual([]);
    expect(mismatches).toHaveLength(0);
    // The keys spread over every partition, so the check covers every residue.
    expect(used.size).toBe(PARTITIONS);
  });
});
