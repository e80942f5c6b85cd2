import { createTopics, deleteTopics, kafkaBrokers, readTopic, testKafka, uniqueTopic } from "@eventlane/test-kit";
import { inspect } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type OutboundMessage,
  type ProducerPort,
  ProducerSendError,
  type RelayKafkaOptions,
  resolveRelayOptions,
} from "../src/index.ts";
import { KafkaJsProducer } from "../src/kafkajs.ts";
import { PlatformaticProducer } from "../src/producer/platformatic-producer.ts";

/** The producer port's behaviour, the same suite for every adapter. */
const adapters = [
  { client: "kafkajs", make: (kafka: RelayKafkaOptions) => new KafkaJsProducer(kafkaOptions(kafka)) },
  { client: "platformatic", make: (kafka: RelayKafkaOptions) => new PlatformaticProducer(kafkaOptions(kafka)) },
] as const;

function kafkaOptions(kafka: RelayKafkaOptions) {
  return resolveRelayOptions({ connectionString: "postgres://unused", kafka, topics: ["unused"] }).kafka!;
}

const testKafkaOptions: RelayKafkaOptions = {
  brokers: kafkaBrokers,
  requestTimeoutMs: 5000,
  connectionTimeoutMs: 2000,
};

function hooksLog() {
  const log: string[] = [];
  return { log, hooks: { onConnected: () => log.push("connected"), onDisconnected: () => log.push("disconnected") } };
}

describe.each(adapters)("the $client producer adapter", ({ client, make }) => {
  const topic = uniqueTopic(`relay.port.${client}`);
  const described = uniqueTopic(`relay.port.described.${client}`);
  const small = uniqueTopic(`relay.port.small.${client}`);
  const producers: ProducerPort[] = [];
  const fresh = () => {
    const p = make(testKafkaOptions);
    producers.push(p);
    return p;
  };

  beforeAll(async () => {
    await createTopics([
      { topic, partitions: 3 },
      { topic: described, partitions: 5, config: { "max.message.bytes": "200000" } },
      { topic: small, partitions: 1, config: { "max.message.bytes": "10000" } },
    ]);
  });
  afterAll(async () => {
    for (const p of producers) await p.disconnect();
    await deleteTopics([topic, described, small]);
  });

  it("sends keys, values and headers that read back intact, in order per key", async () => {
    const producer = fresh();
    const { log, hooks } = hooksLog();
    expect(producer.connected).toBe(false);
    await producer.connect(hooks);
    expect(producer.connected).toBe(true);
    expect(log).toEqual(["connected"]);

    const keys = ["order-1", "заказ-2", "🙂-3", ""];
    const batch = (from: number): OutboundMessage[] =>
      keys.flatMap((key, k) =>
        [0, 1, 2].map((i) => ({
          key,
          value: i === 1 && k === 3 ? null : JSON.stringify({ key, n: from + i, text: "ünïcødé" }),
          headers: { "eventlane-event-id": `${k}-${from + i}`, "eventlane-event-type": "test.happened", "x-empty": "" },
        })),
      );
    const sent = [...batch(0), ...batch(3)];
    await producer.send(topic, batch(0));
    await producer.send(topic, batch(3));

    const read = await readTopic(topic, (m) => m.length >= sent.length);
    expect(read).toHaveLength(sent.length);
    const byId = new Map(read.map((m) => [m.headers["eventlane-event-id"], m]));
    for (const m of sent) {
      const got = byId.get(m.headers["eventlane-event-id"]);
      expect(got, m.headers["eventlane-event-id"]).toBeDefined();
      expect(got!.key).toBe(m.key);
      expect(got!.value).toBe(m.value);
      expect(got!.headers).toEqual(m.headers);
    }
    for (const key of keys) {
      const ofKey = read.filter((m) => m.key === key);
      // One key, one partition, and the order it was sent in.
      expect(new Set(ofKey.map((m) => m.partition)).size).toBe(1);
      expect(ofKey.map((m) => m.headers["eventlane-event-id"])).toEqual(
        sent.filter((m) => m.key === key).map((m) => m.headers["eventlane-event-id"]),
      );
    }
  });

  it("describes topics (partitions, max.message.bytes) and a missing one without creating it", async () => {
    const producer = fresh();
    const missing = uniqueTopic(`relay.port.missing.${client}`);
    const result = await producer.describeTopics([described, missing, topic]);
    expect(result).toEqual([
      { name: described, exists: true, partitions: 5, maxMessageBytes: 200_000 },
      { name: missing, exists: false, partitions: 0, maxMessageBytes: 1_048_588 },
      // The broker's default, reported by the broker itself.
      { name: topic, exists: true, partitions: 3, maxMessageBytes: 1_048_588 },
    ]);
    const admin = testKafka().admin();
    await admin.connect();
    try {
      expect(await admin.listTopics()).not.toContain(missing);
    } finally {
      await admin.disconnect();
    }
  });

  it("fails a record over max.message.bytes with reason record, then sends the next one", async () => {
    const producer = fresh();
    await producer.connect(hooksLog().hooks);
    const oversized: OutboundMessage = {
      key: "big",
      value: "x".repeat(20_000),
      headers: { "eventlane-event-id": "big" },
    };
    const error = await producer.send(small, [oversized]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProducerSendError);
    expect((error as ProducerSendError).code).toBe("EVENTLANE_RELAY_PUBLISH");
    expect((error as ProducerSendError).reason).toBe("record");

    // A record failure needs no reset (the relay does not reset for one): the same producer goes on.
    await producer.send(small, [{ key: "ok", value: "fits", headers: { "eventlane-event-id": "ok" } }]);
    const read = await readTopic(small, (m) => m.length >= 1);
    expect(read.map((m) => [m.key, m.value])).toEqual([["ok", "fits"]]);
  });

  it("reset drops the session (hook) and the next send starts a new one", async () => {
    const producer = fresh();
    const { log, hooks } = hooksLog();
    await producer.connect(hooks);
    await producer.reset();
    expect(producer.connected).toBe(false);
    expect(log).toEqual(["connected", "disconnected"]);
    await producer.send(topic, [{ key: "after-reset", value: "v", headers: {} }]);
    expect(producer.connected).toBe(true);
    expect(log).toEqual(["connected", "disconnected", "connected"]);
    await producer.disconnect();
    expect(producer.connected).toBe(false);
    expect(log).toEqual(["connected", "disconnected", "connected", "disconnected"]);
    const read = await readTopic(topic, (m) => m.some((x) => x.key === "after-reset"));
    expect(read.filter((m) => m.key === "after-reset").map((m) => m.value)).toEqual(["v"]);
  });

  it("keeps SASL credentials out of a failed connection's error", async () => {
    const password = `pw-${Math.random().toString(36).slice(2)}-secret`;
    const producer = make({
      ...testKafkaOptions,
      // The shared broker has a PLAINTEXT listener only, so SASL cannot succeed.
      sasl: { mechanism: "plain", username: "eventlane-user", password },
      connectionTimeoutMs: 1000,
      requestTimeoutMs: 2000,
    });
    producers.push(producer);
    const error = await producer.connect(hooksLog().hooks).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ProducerSendError);
    expect((error as ProducerSendError).reason).not.toBe("record");
    expect(producer.connected).toBe(false);
    expect(inspect(error, { depth: 20 })).not.toContain(password);
  });
});
