import {
  createTopics,
  type PrivateBroker,
  readTopic,
  startPrivateBroker,
  uniqueTopic,
  waitFor,
} from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProducerSendError, type ProducerPort, resolveRelayOptions } from "../src/index.ts";
import { KafkaJsProducer } from "../src/kafkajs.ts";
import { PlatformaticProducer } from "../src/producer/platformatic-producer.ts";

describe("a producer adapter across a broker stop and start", () => {
  let broker: PrivateBroker;
  const topic = uniqueTopic("relay.port.restart");
  const producers: Record<string, ProducerPort> = {};

  beforeAll(async () => {
    broker = await startPrivateBroker();
    await createTopics([{ topic, partitions: 2 }], broker.brokers);
    const kafka = resolveRelayOptions({
      connectionString: "postgres://unused",
      kafka: { brokers: broker.brokers, requestTimeoutMs: 3000, connectionTimeoutMs: 1000 },
      topics: [topic],
    }).kafka!;
    producers.kafkajs = new KafkaJsProducer(kafka);
    producers.platformatic = new PlatformaticProducer(kafka);
  });
  afterAll(async () => {
    for (const p of Object.values(producers)) await p.disconnect();
    await broker?.destroy();
  });

  it("fails sends with a non-record reason while the broker is down, and sends again after it is back", async () => {
    const hooks = { onConnected: () => undefined, onDisconnected: () => undefined };
    for (const [client, p] of Object.entries(producers)) {
      await p.connect(hooks);
      await p.send(topic, [{ key: `${client}-k`, value: "before", headers: { client } }]);
    }

    await broker.stop();
    for (const [client, p] of Object.entries(producers)) {
      const started = Date.now();
      const error = await p.send(topic, [{ key: `${client}-k`, value: "down", headers: { client } }]).catch((e) => e);
      expect(error, client).toBeInstanceOf(ProducerSendError);
      expect(["connection", "timeout"], client).toContain((error as ProducerSendError).reason);
      // The client's own retries are short; the relay's shard back-off does the waiting.
      expect(Date.now() - started, client).toBeLessThan(15_000);
      // What the relay does after a non-throttling failure.
      await p.reset();
    }

    await broker.start();
    for (const [client, p] of Object.entries(producers)) {
      await waitFor(
        `${client} to send after the restart`,
        async () => {
          try {
            await p.send(topic, [{ key: `${client}-k`, value: "after", headers: { client } }]);
            return true;
          } catch (error) {
            expect((error as ProducerSendError).reason, client).not.toBe("record");
            await p.reset();
            return false;
          }
        },
        60_000,
        250,
      );
    }

    const read = await readTopic(topic, (m) => m.filter((x) => x.value === "after").length >= 2, {
      brokers: broker.brokers,
    });
    for (const client of Object.keys(producers)) {
      const values = read.filter((m) => m.key === `${client}-k`).map((m) => m.value);
      // "down" never reached the broker; "after" did, at least once (a retry of it may repeat it).
      expect(values[0], client).toBe("before");
      expect(
        values.slice(1).every((v) => v === "after"),
        client,
      ).toBe(true);
      expect(values.length, client).toBeGreaterThanOrEqual(2);
    }
  });
});
