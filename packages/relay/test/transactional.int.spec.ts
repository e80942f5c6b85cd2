import { createTopics, deleteTopics, readTopic, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createRelay,
  type OutboundMessage,
  type ProducerPort,
  ProducerSendError,
  type Relay,
  resolveRelayOptions,
  type TransactionalProducerPort,
} from "../src/index.ts";
import { createProducer } from "../src/producer/create-producer.ts";
import {
  assertCompleteInOrder,
  countByStatus,
  kafkaClients,
  range,
  type RelayTestDb,
  setupDatabase,
  testEvent,
  testKafkaOptions,
  testRelayOptions,
} from "./support.ts";

const message = (key: string, n: number): OutboundMessage => ({
  key,
  value: JSON.stringify({ key, n }),
  headers: { "eventlane-event-id": `${key}-${n}` },
});

describe.each(kafkaClients)("transactional mode (%s)", (client) => {
  let t: RelayTestDb;
  const topic = uniqueTopic(`relay.tx.${client}`);
  const portTopic = uniqueTopic(`relay.tx.port.${client}`);
  const kafka = testKafkaOptions(client, { mode: "transactional", transactionalIdPrefix: `el-test-${topic}` });
  const producers: ProducerPort[] = [];
  let relay: Relay | undefined;

  const shardProducer = async (transactionalId: string): Promise<TransactionalProducerPort> => {
    const base = await createProducer(
      resolveRelayOptions({ connectionString: "postgres://unused", kafka, topics: ["x"] }).kafka!,
    );
    const p = base.transactional!(transactionalId);
    producers.push(p);
    await p.connect({ onConnected: () => undefined, onDisconnected: () => undefined });
    return p;
  };

  beforeAll(async () => {
    t = await setupDatabase(`el_relay_tx_${client}`);
    await createTopics([
      { topic, partitions: 3 },
      { topic: portTopic, partitions: 2 },
    ]);
  });
  afterAll(async () => {
    await relay?.stop();
    for (const p of producers) await p.disconnect();
    await deleteTopics([topic, portTopic]);
    await t.close();
  });

  it("publishes batches, each in one transaction, visible to read_committed consumers complete and in order", async () => {
    const Happened = testEvent(topic);
    for (const n of range(1, 6))
      for (const k of range(1, 8)) await t.store.enqueue(t.kysely, Happened, { key: `k${k}`, n });
    relay = createRelay(testRelayOptions(t.db.url, [topic], { kafka, batchSize: 10 }));
    const batches: number[] = [];
    relay.on("batch:published", (e) => batches.push(e.count));
    await relay.start();
    await waitFor("drained", async () => (await countByStatus(t.pool)).pending === undefined, 20_000);
    const read = await readTopic(topic, (m) => m.length >= 48, { isolation: "read_committed" });
    expect(assertCompleteInOrder(read, 48)).toBe(0);
    expect(batches.length).toBeGreaterThanOrEqual(5);
    await relay.stop();
    relay = undefined;
  });

  it("an aborted transaction's records never reach read_committed consumers", async () => {
    const p = await shardProducer(`el-test-${portTopic}-abort`);
    await p.send(portTopic, [message("a", 1), message("b", 1)]);
    await p.abortTransaction();
    await p.send(portTopic, [message("a", 2), message("b", 2)]);
    await p.commitTransaction();
    const uncommitted = await readTopic(portTopic, (m) => m.length >= 4, { isolation: "read_uncommitted" });
    expect(uncommitted.map((m) => m.headers["eventlane-event-id"]).sort()).toEqual(["a-1", "a-2", "b-1", "b-2"]);
    const committed = await readTopic(portTopic, (m) => m.length >= 2, { isolation: "read_committed" });
    expect(committed.map((m) => m.headers["eventlane-event-id"]).sort()).toEqual(["a-2", "b-2"]);
  });

  it("a zombie: after a successor initialises the shard's transactional.id, the older producer's send fails as a leadership error", async () => {
    const id = `el-test-${portTopic}-zombie`;
    const zombie = await shardProducer(id);
    await zombie.send(portTopic, [message("z", 1)]);
    const successor = await shardProducer(id);
    const late = await zombie
      .send(portTopic, [message("z", 2)])
      .then(() => zombie.commitTransaction())
      .catch((e: unknown) => e);
    expect(late).toBeInstanceOf(ProducerSendError);
    expect((late as ProducerSendError).reason).toBe("leadership");
    await successor.send(portTopic, [message("z", 3)]);
    await successor.commitTransaction();
    const committed = await readTopic(portTopic, (m) => m.some((x) => x.key === "z"), { isolation: "read_committed" });
    expect(committed.filter((m) => m.key === "z").map((m) => m.headers["eventlane-event-id"])).toEqual(["z-3"]);
  });
});
