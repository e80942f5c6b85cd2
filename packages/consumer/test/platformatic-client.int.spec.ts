import {
  createTopics,
  deleteTopics,
  kafkaBrokers,
  testKafka,
  uniqueSuffix,
  uniqueTopic,
  waitFor,
} from "@eventlane/test-kit";
import { Admin, Connection, Consumer, consumerGroupDescribeV0 } from "@platformatic/kafka";
import { Redacted } from "effect";
import type { Admin as KafkaJsAdmin, Producer } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type {
  ChunkSink,
  ConsumerClientSettings,
  PartitionChunk,
  PartitionOffset,
  ResolvedConsumerKafkaOptions,
  TopicPartition,
} from "../src/client/consumer-client.ts";
import { PlatformaticConsumerClient } from "../src/client/platformatic-client.ts";
import { ConsumerStateError } from "../src/errors.ts";

const protocols = ["classic", "consumer"] as const;
type Protocol = (typeof protocols)[number];

const kafkaOptions = (brokers: readonly string[] = kafkaBrokers): ResolvedConsumerKafkaOptions => ({
  client: "platformatic",
  brokers,
  clientId: "eventlane-test",
  ssl: Redacted.make(false),
  sasl: undefined,
  connectionTimeoutMs: 1_000,
  requestTimeoutMs: 10_000,
});

function settingsFor(
  protocol: Protocol,
  topic: string,
  overrides: Partial<ConsumerClientSettings> = {},
): ConsumerClientSettings {
  return {
    groupId: `test-platformatic-${uniqueSuffix()}`,
    topics: [topic],
    fromBeginning: true,
    isolation: "read_committed",
    batchSize: 7,
    concurrency: 2,
    maxWaitTimeMs: 100,
    sessionTimeoutMs: protocol === "classic" ? 10_000 : null,
    heartbeatIntervalMs: protocol === "classic" ? 500 : null,
    groupProtocol: protocol,
    ...overrides,
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const keyOf = (p: TopicPartition) => `${p.topic}:${p.partition}`;

/** A sink like the engine's: applies a chunk unless it went inactive, then commits the offset after it. */
function recorder(
  client: () => PlatformaticConsumerClient,
  options: { commit?: boolean; before?: (chunk: PartitionChunk) => Promise<void> | void } = {},
) {
  const applied: PartitionChunk[] = [];
  const committedByClient: PartitionOffset[] = [];
  const assigned: TopicPartition[] = [];
  const revoked: TopicPartition[] = [];
  const errors: string[] = [];
  const busy = new Set<string>();
  const stats = { inFlight: 0, maxInFlight: 0, overlapped: false, abandoned: 0, commitFailures: [] as string[] };
  const sink: ChunkSink = {
    async applyChunk(chunk, control) {
      const key = keyOf(chunk);
      if (busy.has(key)) stats.overlapped = true;
      busy.add(key);
      stats.inFlight++;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      try {
        await options.before?.(chunk);
        if (!control.isActive()) {
          stats.abandoned++;
          throw new Error("abandoned: the partition was revoked");
        }
        applied.push(chunk);
        const last = chunk.records.at(-1)!;
        // As the engine does: a failed commit (a rebalance under way) is tried again while the chunk is active.
        while (options.commit !== false) {
          try {
            await client().commit({
              topic: chunk.topic,
              partition: chunk.partition,
              offset: `${BigInt(last.offset) + 1n}`,
            });
            break;
          } catch (error) {
            stats.commitFailures.push(describeError(error));
            if (!control.isActive()) throw error;
            await sleep(100);
          }
        }
      } finally {
        stats.inFlight--;
        busy.delete(key);
      }
    },
    onAssigned: (partitions) => assigned.push(...partitions),
    onRevoked: (partitions) => revoked.push(...partitions),
    onCommitted: (offset) => committedByClient.push(offset),
    onError: (error) => errors.push(describeError(error)),
  };
  const offsets = (partition: number) =>
    applied.filter((c) => c.partition === partition).flatMap((c) => c.records.map((r) => Number(r.offset)));
  return { sink, applied, committedByClient, assigned, revoked, errors, stats, offsets };
}

/** An error's class, message and Kafka error ids, nested ones included: what a failed assertion shows. */
function describeError(error: unknown): string {
  const e = error as { name?: string; message?: string; apiId?: string; errors?: unknown[]; cause?: unknown };
  const nested = [...(e.errors ?? []), ...(e.cause !== undefined ? [e.cause] : [])].map(describeError);
  return `${e.name ?? typeof error}: ${e.message ?? String(error)}${e.apiId ? ` [${e.apiId}]` : ""}${nested.length > 0 ? ` (${nested.join("; ")})` : ""}`;
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

async function produce(producer: Producer, topic: string, partition: number, from: number, count: number) {
  await producer.send({
    topic,
    messages: range(count, from).map((n) => ({ partition, key: `k-${partition}-${n}`, value: `v-${n}` })),
  });
}

/** The group's member ids, as the broker knows them. */
async function groupMembers(protocol: Protocol, groupId: string): Promise<string[]> {
  const [host, port] = kafkaBrokers[0]!.split(":");
  if (protocol === "classic") {
    const admin = new Admin({ clientId: "eventlane-test", bootstrapBrokers: [...kafkaBrokers] });
    try {
      return [...((await admin.describeGroups({ groups: [groupId] })).get(groupId)?.members.keys() ?? [])];
    } finally {
      await admin.close();
    }
  }
  // DescribeGroups lists no members of a consumer-protocol group: ConsumerGroupDescribe does.
  const connection = new Connection("eventlane-test");
  await connection.connect(host!, Number(port));
  try {
    const described = await consumerGroupDescribeV0.api.async(connection, [groupId], false);
    return described.groups[0]?.members.map((m) => m.memberId) ?? [];
  } finally {
    await connection.close();
  }
}

/** Removes a member from its group behind its back, as an expired session or an operator would. */
async function removeMember(protocol: Protocol, groupId: string, memberId: string): Promise<void> {
  if (protocol === "classic") {
    const admin = new Admin({ clientId: "eventlane-test", bootstrapBrokers: [...kafkaBrokers] });
    try {
      await admin.removeMembersFromConsumerGroup({ groupId, members: [{ memberId }] });
    } finally {
      await admin.close();
    }
    return;
  }
  // A consumer-protocol member leaves with a heartbeat of epoch -1: sent here under the member's id.
  const intruder = new Consumer({
    clientId: "eventlane-test",
    bootstrapBrokers: [...kafkaBrokers],
    groupId,
    groupProtocol: "consumer",
  });
  // On close the client sends the leave only over an open connection to the coordinator.
  await intruder.findGroupCoordinator();
  await intruder.metadata({ topics: [] });
  intruder.memberId = memberId;
  await intruder.close();
}

async function committed(admin: KafkaJsAdmin, groupId: string, topic: string): Promise<number[]> {
  const [result] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return result!.partitions.sort((a, b) => a.partition - b.partition).map((p) => Number(p.offset));
}

/** Every topic of the file, created at once (concurrent creations race in kafkajs's wait for leaders). */
const topicSpecs = {
  ...Object.fromEntries(
    protocols.flatMap((p) => [
      [`order.${p}`, 3],
      [`slow.${p}`, 3],
      [`rebalance.${p}`, 4],
      [`forgotten.${p}`, 2],
    ]),
  ),
  transactions: 1,
  stop: 1,
} as Record<string, number>;
const topicNames = Object.fromEntries(
  Object.keys(topicSpecs).map((name) => [name, uniqueTopic(`consumer.platformatic.${name}`)]),
);
const topicOf = (name: string): string => topicNames[name]!;

describe.concurrent("the platformatic consumer client", () => {
  const clients: PlatformaticConsumerClient[] = [];
  let producer: Producer;
  let admin: KafkaJsAdmin;
  const kafka = testKafka();
  const newClient = (settings: ConsumerClientSettings, brokers?: readonly string[]) => {
    const client = new PlatformaticConsumerClient(kafkaOptions(brokers), settings);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    producer = kafka.producer();
    admin = kafka.admin();
    await Promise.all([producer.connect(), admin.connect()]);
    const specs = Object.entries(topicSpecs).map(([name, partitions]) => ({ topic: topicOf(name), partitions }));
    // On a busy broker the wait for leaders can meet UNKNOWN_TOPIC_OR_PARTITION for topics just created.
    await createTopics(specs).catch(() =>
      waitFor("the new topics", () =>
        admin.fetchTopicMetadata({ topics: specs.map((s) => s.topic) }).then(
          (m) => m.topics.every((t) => t.partitions.every((p) => p.leader >= 0)),
          () => false,
        ),
      ),
    );
  });
  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.stop()));
    await Promise.allSettled([producer?.disconnect(), admin?.disconnect()]);
    await deleteTopics(Object.values(topicNames));
  });

  describe.each(protocols)("with the %s group protocol", (protocol) => {
    it("delivers every record once, in offset order, in chunks of at most batchSize, and commits only through commit()", async () => {
      const topic = topicOf(`order.${protocol}`);
      await Promise.all(range(3).map((p) => produce(producer, topic, p, 0, 40)));
      await producer.send({
        topic,
        messages: [
          {
            partition: 0,
            key: null,
            value: null,
            headers: { "x-repeat": ["first", "second"], "x-text": "ünïcødé 🙂" },
          },
        ],
      });
      const settings = settingsFor(protocol, topic);
      const client = newClient(settings);
      const r = recorder(() => client, { commit: false });

      await client.start(r.sink);
      await expect(client.start(r.sink)).rejects.toBeInstanceOf(ConsumerStateError);
      expect(r.assigned.map(keyOf).sort()).toEqual(range(3).map((p) => `${topic}:${p}`));
      await waitFor("every record", () => r.applied.reduce((n, c) => n + c.records.length, 0) >= 121, 15_000);

      expect(r.offsets(0)).toEqual(range(41));
      expect(r.offsets(1)).toEqual(range(40));
      expect(r.offsets(2)).toEqual(range(40));
      for (const chunk of r.applied) {
        expect(chunk.records.length).toBeGreaterThan(0);
        expect(chunk.records.length).toBeLessThanOrEqual(settings.batchSize);
      }
      expect(r.stats.maxInFlight).toBeLessThanOrEqual(settings.concurrency);
      expect(r.stats.overlapped).toBe(false);
      const first = r.applied.find((c) => c.partition === 1)!.records[0]!;
      expect(first.key?.toString()).toBe("k-1-0");
      expect(first.value?.toString()).toBe("v-0");
      expect(first.headers).toEqual({});
      expect(Math.abs(first.timestamp - Date.now())).toBeLessThan(120_000);
      const last = r.applied
        .filter((c) => c.partition === 0)
        .at(-1)!
        .records.at(-1)!;
      expect(last).toMatchObject({ offset: "40", key: null, value: null });
      expect(last.headers).toEqual({ "x-repeat": "first", "x-text": "ünïcødé 🙂" });

      // Autocommit is off: nothing is committed until commit() is called (no transaction markers here).
      await sleep(300);
      expect(r.committedByClient).toEqual([]);
      expect(await committed(admin, settings.groupId, topic)).toEqual([-1, -1, -1]);
      expect(await client.committedOffsets([topic])).toEqual([]);
      await Promise.all(range(3).map((p) => client.commit({ topic, partition: p, offset: p === 0 ? "41" : "40" })));
      expect(await committed(admin, settings.groupId, topic)).toEqual([41, 40, 40]);
      expect((await client.committedOffsets([topic])).map((o) => o.offset)).toEqual(["41", "40", "40"]);
      // An offset of a partition that is not in the assignment is not committed.
      await client.commit({ topic, partition: 7, offset: "3" });
      expect(await client.endOffsets([topic])).toEqual([
        { topic, partition: 0, offset: "41" },
        { topic, partition: 1, offset: "40" },
        { topic, partition: 2, offset: "40" },
      ]);

      const stopping = client.stop();
      expect(client.stop()).toBe(stopping);
      await stopping;
      expect(r.revoked.map(keyOf).sort()).toEqual(range(3).map((p) => `${topic}:${p}`));
      await expect(client.start(r.sink)).rejects.toBeInstanceOf(ConsumerStateError);
      // Stopped: a short-lived consumer answers.
      expect(await client.committedOffsets([topic])).toEqual([
        { topic, partition: 0, offset: "41" },
        { topic, partition: 1, offset: "40" },
        { topic, partition: 2, offset: "40" },
      ]);
      expect(r.errors).toEqual([]);
    });

    it("keeps the other partitions flowing while one partition's chunk is slow, and skips nothing of it", async () => {
      const topic = topicOf(`slow.${protocol}`);
      let release: () => void = () => undefined;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      let warm = false;
      let gated = false;
      // batchSize 5 × concurrency 2: the stream pauses at 40 buffered records. No commits and the
      // latest offset for a group without one: the re-fetch of partition 0 must resume where the
      // client stopped delivering, or it starts at the end and skips what was dropped.
      const settings = settingsFor(protocol, topic, { batchSize: 5, concurrency: 2, fromBeginning: false });
      const client = newClient(settings);
      const r = recorder(() => client, {
        commit: false,
        before: async (chunk) => {
          if (warm && chunk.partition === 0 && !gated) {
            gated = true;
            await gate;
          }
        },
      });
      await client.start(r.sink);
      // Records before the stream knows its start (the latest offset) may be missed: warm up first.
      const next = [0, 0, 0];
      await waitFor("a first record of every partition", async () => {
        if (range(3).every((p) => r.offsets(p).length > 0)) return true;
        await Promise.all(range(3).map((p) => produce(producer, topic, p, next[p]!++, 1)));
        return false;
      });
      warm = true;
      const from = range(3).map((p) => r.offsets(p)[0]!);
      await Promise.all(range(3).map((p) => produce(producer, topic, p, next[p]!, 60)));
      const produced = next.map((n) => n + 60);
      const count = (p: number) => produced[p]! - from[p]!;
      await waitFor("partitions 1 and 2", () => r.offsets(1).length === count(1) && r.offsets(2).length === count(2));
      await Promise.all([produce(producer, topic, 1, produced[1]!, 30), produce(producer, topic, 2, produced[2]!, 30)]);
      await waitFor(
        "new records of partitions 1 and 2",
        () => r.offsets(1).length === count(1) + 30 && r.offsets(2).length === count(2) + 30,
      );
      expect(gated).toBe(true);
      expect(r.offsets(0)).toEqual(range(next[0]! - from[0]!, from[0]));

      release();
      await waitFor("partition 0", () => r.offsets(0).length >= count(0), 15_000);
      expect(r.offsets(0)).toEqual(range(count(0), from[0]));
      expect(r.offsets(1)).toEqual(range(count(1) + 30, from[1]));
      expect(r.offsets(2)).toEqual(range(count(2) + 30, from[2]));
      expect(r.stats.maxInFlight).toBeLessThanOrEqual(2);
      expect(r.stats.overlapped).toBe(false);
      await client.stop();
      expect(r.errors).toEqual([]);
    });

    it("shares the partitions with a member joining mid-way and takes them back when it leaves, skipping nothing", async () => {
      const topic = topicOf(`rebalance.${protocol}`);
      const next = [0, 0, 0, 0];
      let producing = true;
      const producing$ = (async () => {
        while (producing) {
          await Promise.all(
            range(4).map((p) => {
              const from = next[p]!;
              next[p] = from + 3;
              return produce(producer, topic, p, from, 3);
            }),
          );
          await sleep(50);
        }
      })();
      const settings = settingsFor(protocol, topic, { batchSize: 5 });
      const a = newClient(settings);
      const b = newClient(settings);
      const slow = async () => {
        await sleep(10);
      };
      const ra = recorder(() => a, { before: slow });
      const rb = recorder(() => b, { before: slow });

      await a.start(ra.sink);
      await waitFor("a few records on the first member", () => ra.applied.length >= 10, 15_000);
      await b.start(rb.sink);
      await waitFor("the second member's first chunk", () => rb.applied.length > 0 && ra.revoked.length > 0, 25_000);
      expect(ra.revoked.map(keyOf).sort()).toEqual(rb.assigned.map(keyOf).sort());
      const movedBack = rb.assigned.map(keyOf);
      const chunksBefore = ra.applied.length;
      await b.stop();
      await waitFor(
        "the first member's chunks of the partitions it got back",
        () => ra.applied.slice(chunksBefore).some((c) => movedBack.includes(keyOf(c))),
        25_000,
      );
      expect(ra.assigned.map(keyOf).sort()).toEqual([...range(4).map((p) => `${topic}:${p}`), ...movedBack].sort());
      producing = false;
      await producing$;
      const total = [...next];

      const seen = (partition: number) => new Set([...ra.offsets(partition), ...rb.offsets(partition)]);
      await waitFor("every record on one member or the other", () => range(4).every((p) => seen(p).size >= total[p]!));
      for (const p of range(4)) expect([...seen(p)].sort((x, y) => x - y)).toEqual(range(total[p]!));
      for (const chunk of [...ra.applied, ...rb.applied]) {
        const offsets = chunk.records.map((r) => Number(r.offset));
        expect(offsets).toEqual(range(offsets.length, offsets[0]));
      }
      expect(ra.stats.overlapped || rb.stats.overlapped).toBe(false);
      await waitFor(
        "the last commits",
        async () => (await committed(admin, settings.groupId, topic)).join() === total.join(),
      );
      await a.stop();
      expect([...ra.errors, ...rb.errors]).toEqual([]);
    });

    it("joins the group again when the broker forgot the member, skipping nothing", async () => {
      const topic = topicOf(`forgotten.${protocol}`);
      await Promise.all(range(2).map((p) => produce(producer, topic, p, 0, 10)));
      const settings = settingsFor(protocol, topic);
      const client = newClient(settings);
      const r = recorder(() => client);
      await client.start(r.sink);
      await waitFor("the first records", () => r.offsets(0).length === 10 && r.offsets(1).length === 10);
      const [member] = await groupMembers(protocol, settings.groupId);
      await removeMember(protocol, settings.groupId, member!);
      expect(await groupMembers(protocol, settings.groupId)).toEqual([]);

      await Promise.all(range(2).map((p) => produce(producer, topic, p, 10, 10)));
      // The client goes on fetching without a membership (Kafka needs none to fetch); it learns of
      // the loss from its next heartbeat or commit.
      await waitFor(
        "a member of the group again",
        async () => (await groupMembers(protocol, settings.groupId)).length > 0,
      );
      // Records delivered before the loss may come again (the new member starts from the commits).
      const distinct = (p: number) => new Set(r.offsets(p)).size;
      await waitFor("the records after", () => distinct(0) === 20 && distinct(1) === 20);
      for (const p of range(2)) expect([...new Set(r.offsets(p))].sort((x, y) => x - y)).toEqual(range(20));
      await waitFor(
        "the commits as the new member",
        async () => (await committed(admin, settings.groupId, topic)).join() === "20,20",
      );
      expect(await groupMembers(protocol, settings.groupId)).not.toContain(member);
      await client.stop();
    });
  });

  it("sees the last stable offset under read_committed and commits past a transaction's marker", async () => {
    const topic = topicOf("transactions");
    const transactional = kafka.producer({ transactionalId: `test-${uniqueSuffix()}`, maxInFlightRequests: 1 });
    await transactional.connect();
    try {
      const transaction = await transactional.transaction();
      await transaction.send({ topic, messages: range(3).map((n) => ({ key: "k", value: `v-${n}` })) });
      // Not started: a short-lived consumer answers.
      const settings = settingsFor("classic", topic);
      const readCommitted = newClient(settings);
      const readUncommitted = newClient({
        ...settings,
        groupId: `${settings.groupId}-ru`,
        isolation: "read_uncommitted",
      });
      expect(await readCommitted.endOffsets([topic])).toEqual([{ topic, partition: 0, offset: "0" }]);
      expect(await readUncommitted.endOffsets([topic])).toEqual([{ topic, partition: 0, offset: "3" }]);

      const r = recorder(() => readCommitted);
      await readCommitted.start(r.sink);
      await transaction.commit();
      await waitFor("the committed records", () => r.offsets(0).length === 3);
      expect(r.offsets(0)).toEqual([0, 1, 2]);
      // The engine committed 3; the commit marker at 3 leaves no lag: 4 is the last stable offset.
      await waitFor(
        "the offset past the marker",
        async () => (await committed(admin, settings.groupId, topic))[0] === 4,
      );
      expect(r.committedByClient).toEqual([{ topic, partition: 0, offset: "4" }]);
      expect(await readCommitted.endOffsets([topic])).toEqual([{ topic, partition: 0, offset: "4" }]);
      await readCommitted.stop();
      expect(r.errors).toEqual([]);
    } finally {
      await transactional.disconnect();
    }
  });

  it("rejects start when no broker answers, and the same instance may start again", async () => {
    const client = newClient(settingsFor("classic", "never.created"), ["127.0.0.1:1"]);
    const r = recorder(() => client);
    const first = await client.start(r.sink).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(first).toBeInstanceOf(Error);
    expect(first).not.toBeInstanceOf(ConsumerStateError);
    const second = await client.start(r.sink).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(second).toBeInstanceOf(Error);
    expect(second).not.toBeInstanceOf(ConsumerStateError);
    await client.stop();
  });

  it("stops after the chunk being applied, whose isActive() turns false", async () => {
    const topic = topicOf("stop");
    await produce(producer, topic, 0, 0, 5);
    const client = newClient(settingsFor("classic", topic));
    const log: string[] = [];
    let started: () => void = () => undefined;
    const chunkStarted = new Promise<void>((resolve) => {
      started = resolve;
    });
    await client.start({
      async applyChunk(_chunk, control) {
        log.push(`active before stop: ${control.isActive()}`);
        started();
        await sleep(500);
        log.push(`active after stop: ${control.isActive()}`);
        log.push("chunk done");
      },
      onAssigned: () => undefined,
      onRevoked: () => log.push("revoked"),
      onCommitted: () => log.push("committed"),
      onError: (error) => log.push(`error: ${describeError(error)}`),
    });
    await chunkStarted;
    await client.stop();
    log.push("stopped");
    expect(log).toEqual(["active before stop: true", "active after stop: false", "chunk done", "revoked", "stopped"]);
  });
});
