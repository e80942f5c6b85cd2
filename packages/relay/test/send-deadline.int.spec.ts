import {
  deleteTopics,
  type FaultProxy,
  kafkaBrokers,
  startFaultProxy,
  testKafka,
  uniqueTopic,
} from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OutboundMessage, type ProducerPort, type RelayKafkaOptions, resolveRelayOptions } from "../src/index.ts";
import { KafkaJsProducer } from "../src/kafkajs.ts";
import { PlatformaticProducer } from "../src/producer/platformatic-producer.ts";
import type { SendDeadline } from "../src/producer/producer-port.ts";
import { type AdvertisingProxy, startAdvertisingProxy } from "./kafka-advertising-proxy.ts";
import { createTopicsSettled } from "./support.ts";

// Each adapter's sends under a deadline, with every connection of the client going through a fault
// proxy (the advertising proxy makes the broker's address in metadata point at it): whatever the
// client does inside a send (reconnect, refresh metadata, retry on its own), no produce request may
// leave once the deadline is closed, and a send still unsettled when the lease ends is abandoned.

const adapters = [
  { client: "kafkajs", make: (kafka: RelayKafkaOptions) => new KafkaJsProducer(kafkaOptions(kafka)) },
  { client: "platformatic", make: (kafka: RelayKafkaOptions) => new PlatformaticProducer(kafkaOptions(kafka)) },
] as const;

function kafkaOptions(kafka: RelayKafkaOptions) {
  return resolveRelayOptions({ connectionString: "postgres://unused", kafka, topics: ["unused"] }).kafka!;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A deadline from now: produce requests may be written for `writableMs`, the send must settle within `settleMs`. */
function deadlineFromNow(writableMs: number, settleMs: number): SendDeadline & { readonly error: Error } {
  const start = performance.now();
  const error = new Error("the test's deadline is closed");
  return {
    error,
    writableMs: () => start + writableMs - performance.now(),
    settleMs: () => start + settleMs - performance.now(),
    closedError: () => error,
  };
}
const OPEN = (): SendDeadline => deadlineFromNow(600_000, 600_000);

function messages(prefix: string, n = 5): OutboundMessage[] {
  return Array.from({ length: n }, (_, i) => ({ key: `${prefix}-${i % 2}`, value: `${prefix}-${i}`, headers: {} }));
}

/** Records in the topic (one partition, idempotent producers: one offset per record). */
async function recordsIn(topic: string): Promise<number> {
  const admin = testKafka().admin();
  await admin.connect();
  try {
    const [p] = await admin.fetchTopicOffsets(topic);
    return Number(p!.high);
  } finally {
    await admin.disconnect();
  }
}

/** How long `fn` took to settle, and its error if it rejected. */
async function timed(fn: () => Promise<void>): Promise<{ ms: number; error: unknown }> {
  const start = performance.now();
  try {
    await fn();
    return { ms: performance.now() - start, error: undefined };
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
}

describe.each(adapters)("sends of the $client adapter under a deadline", ({ client, make }) => {
  const topic = uniqueTopic(`relay.deadline.${client}`);
  let fault: FaultProxy;
  let advertising: AdvertisingProxy;
  const producers: ProducerPort[] = [];

  /** A connected adapter whose every broker connection goes through the fault proxy. */
  const connected = async () => {
    const producer = make({
      brokers: [`127.0.0.1:${advertising.port}`],
      requestTimeoutMs: 3000,
      connectionTimeoutMs: 2000,
    });
    producers.push(producer);
    await producer.connect({ onConnected: () => undefined, onDisconnected: () => undefined });
    return producer;
  };

  beforeAll(async () => {
    await createTopicsSettled([{ topic, partitions: 1 }]);
    const [host, port] = kafkaBrokers[0]!.split(":");
    fault = await startFaultProxy({ host: host!, port: Number(port) });
    advertising = await startAdvertisingProxy({ host: "127.0.0.1", port: fault.port }, Number(port));
  });
  afterAll(async () => {
    fault?.heal();
    for (const p of producers) await p.disconnect().catch(() => undefined);
    await advertising?.close();
    await fault?.close();
    await deleteTopics([topic]);
  });

  it("a closed deadline: the send is refused before anything is written", async () => {
    const producer = await connected();
    const before = await recordsIn(topic);
    const closed = deadlineFromNow(-1, 10_000);
    await expect(producer.send(topic, messages("closed"), closed)).rejects.toBe(closed.error);
    await sleep(500);
    expect(await recordsIn(topic)).toBe(before);
    // The adapter still works: an open deadline sends.
    await producer.send(topic, messages("after-closed"), OPEN());
    expect(await recordsIn(topic)).toBe(before + 5);
  });

  it("a send that must reconnect: its produce request, due after the deadline closed, is never written", async () => {
    const producer = await connected();
    fault.delay(400);
    try {
      // Control: with an open deadline the same slow send (bootstrap, metadata, producer id, all
      // through 800 ms round trips, then the produce request) lands.
      await producer.reset();
      const before = await recordsIn(topic);
      const slow = await timed(() => producer.send(topic, messages("slow-open"), OPEN()));
      expect(slow.error).toBeUndefined();
      expect(slow.ms).toBeGreaterThan(1600);
      expect(await recordsIn(topic)).toBe(before + 5);

      // The deadline closes 600 ms into the send, before the client can have written the produce request.
      await producer.reset();
      const deadline = deadlineFromNow(600, 60_000);
      const refused = await timed(() => producer.send(topic, messages("slow-closed"), deadline));
      expect(refused.error).toBe(deadline.error);
      // Refused when the client came to write it, not when the send started.
      expect(refused.ms).toBeGreaterThan(1600);
      fault.heal();
      await sleep(2000);
      expect(await recordsIn(topic)).toBe(before + 5);
      console.log(
        `[deadline] ${client}: slow send (reconnect through 400 ms delays) landed after ${Math.round(slow.ms)} ms; with a 600 ms deadline refused at ${Math.round(refused.ms)} ms, nothing written`,
      );
    } finally {
      fault.heal();
    }
  });

  it("the client's own retry, due after the deadline closed, is never written", async () => {
    const producer = await connected();
    const before = await recordsIn(topic);
    // Control: the first produce request vanishes in a partition; once the connection is reset the
    // client retries on its own (a new connection) and, with an open deadline, the retry lands.
    fault.blackhole();
    const open = producer.send(topic, messages("retry-open"), OPEN());
    await sleep(1000);
    fault.heal();
    fault.cut();
    await open;
    expect(await recordsIn(topic)).toBe(before + 5);

    // The same with a deadline that closes 700 ms in: the retry comes after it and is refused.
    fault.blackhole();
    const deadline = deadlineFromNow(700, 60_000);
    const closed = timed(() => producer.send(topic, messages("retry-closed"), deadline));
    await sleep(1000);
    fault.heal();
    fault.cut();
    const refused = await closed;
    expect(refused.error).toBe(deadline.error);
    await sleep(2000);
    expect(await recordsIn(topic)).toBe(before + 5);
    // A new session sends again.
    await producer.send(topic, messages("retry-after"), OPEN());
    expect(await recordsIn(topic)).toBe(before + 10);
  });

  it("a send still unsettled when the lease ends is abandoned then, not at the client's own timeout", async () => {
    const producer = await connected();
    const before = await recordsIn(topic);
    fault.blackhole();
    try {
      const deadline = deadlineFromNow(300, 800);
      const abandoned = await timed(() => producer.send(topic, messages("abandoned"), deadline));
      expect(abandoned.error).toBe(deadline.error);
      // The request timeout is 3000 ms: the lease end (800 ms) settled the send.
      expect(abandoned.ms).toBeGreaterThanOrEqual(780);
      expect(abandoned.ms).toBeLessThan(2000);
      expect(producer.connected).toBe(false);
      fault.heal();
      fault.cut();
      await sleep(2000);
      expect(await recordsIn(topic)).toBe(before);
      await producer.send(topic, messages("abandoned-after"), OPEN());
      expect(await recordsIn(topic)).toBe(before + 5);
      console.log(`[deadline] ${client}: send abandoned ${Math.round(abandoned.ms)} ms in (lease end at 800 ms)`);
    } finally {
      fault.heal();
    }
  });
});
