import {
  deleteTopics,
  type FaultProxy,
  kafkaBrokers,
  startFaultProxy,
  testKafka,
  uniqueTopic,
  waitFor,
} from "@eventlane/test-kit";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { KafkaClient } from "../src/index.ts";
import { type AdvertisingProxy, startAdvertisingProxy } from "./kafka-advertising-proxy.ts";
import { type ProcessRelay, spawnRelay } from "./process-relay.ts";
import { createTopicsSettled, kafkaClients, type RelayTestDb, setupDatabase, testEvent } from "./support.ts";

// Idempotent mode: a leader paused inside a slow send must not land that batch after its successor's
// sends once it resumes. The leader's broker connections run through a fault proxy; its produce request
// vanishes in a partition, the leader is SIGSTOPped while it waits, a standby takes over and publishes
// the rows, the partition heals with its connections reset, and the leader resumes: its client would
// now retry on a fresh connection (the retry loop of the chaos run), long after the lease expired.
// No produce request may be written after the lease deadline minus the send margin: the topic must
// hold the successor's records only. Relays as child processes; lease 3 s, heartbeat 500 ms.
const LEASE_MS = 3000;
const ROWS = 20;

describe("a leader paused inside a slow send (idempotent mode)", () => {
  let t: RelayTestDb;
  let fault: FaultProxy;
  let advertising: AdvertisingProxy;
  const topics = Object.fromEntries(kafkaClients.map((c) => [c, uniqueTopic(`relay.late-send.${c}`)])) as Record<
    KafkaClient,
    string
  >;
  const children: ProcessRelay[] = [];

  const spawnOne = (name: string, client: KafkaClient, brokers: readonly string[]) => {
    const child = spawnRelay(name, {
      connectionString: t.db.url,
      kafka: { brokers, requestTimeoutMs: 5000, connectionTimeoutMs: 2000, client },
      topics: [topics[client]],
      instanceId: name,
      leaseMs: LEASE_MS,
      heartbeatIntervalMs: 500,
      acquireIntervalMs: 200,
      pollIntervalMs: 100,
      batchSize: 50,
      backoffBaseMs: 100,
      backoffMaxMs: 2000,
      retentionMs: 0,
    });
    children.push(child);
    return child;
  };

  // A parked key is skipped by the reader, so its rows wait until the test lets the leader see them.
  const park = (topic: string, key: string) =>
    t.pool.query(
      "INSERT INTO eventlane.parked_keys (topic, key, outbox_id, reason) VALUES ($1, $2, 0, 'held back by the test')",
      [topic, key],
    );
  const unpark = (topic: string, key: string) =>
    t.pool.query("DELETE FROM eventlane.parked_keys WHERE topic = $1 AND key = $2", [topic, key]);
  const epochsOf = async (topic: string) =>
    (
      await t.pool.query<{ status: string; epoch: string | null }>(
        "SELECT status, published_epoch::text AS epoch FROM eventlane.outbox WHERE topic = $1 ORDER BY id",
        [topic],
      )
    ).rows.map((r) => `${r.status}:${r.epoch ?? "-"}`);
  /** Records in the topic (one partition; idempotent producers: one offset per record). */
  const recordsIn = async (topic: string) => {
    const admin = testKafka().admin();
    await admin.connect();
    try {
      return Number((await admin.fetchTopicOffsets(topic))[0]!.high);
    } finally {
      await admin.disconnect();
    }
  };

  beforeAll(async () => {
    t = await setupDatabase("el_relay_late_send");
    await createTopicsSettled(kafkaClients.map((c) => ({ topic: topics[c], partitions: 1 })));
    const [host, port] = kafkaBrokers[0]!.split(":");
    fault = await startFaultProxy({ host: host!, port: Number(port) });
    advertising = await startAdvertisingProxy({ host: "127.0.0.1", port: fault.port }, Number(port));
  });
  // Each test starts with no relay running, so the shard is free.
  afterEach(async () => {
    fault?.heal();
    for (const c of children.splice(0)) {
      c.kill("SIGCONT");
      c.kill("SIGKILL");
      await c.exited;
    }
  });
  afterAll(async () => {
    await advertising?.close();
    await fault?.close();
    await deleteTopics(Object.values(topics));
    await t?.close();
  });

  it.each(kafkaClients)(
    "%s: the resumed leader's client retries after the lease expired; nothing of it is written, the topic holds the successor's records only",
    async (client) => {
      const topic = topics[client];
      const key = `late-${client}`;
      const a = spawnOne(`${key}-a`, client, [`127.0.0.1:${advertising.port}`]);
      const epochA = (await a.waitFor((l) => l.t === "leader:acquired")).epoch as number;
      const b = spawnOne(`${key}-b`, client, kafkaBrokers);
      await b.waitFor((l) => l.t === "started");
      await park(topic, key);
      for (let n = 1; n <= ROWS; n++) await t.store.enqueue(t.kysely, testEvent(topic), { key, n });

      // a sends the batch into the partition and is paused while its client waits for the answer.
      fault.blackhole();
      await unpark(topic, key);
      await a.waitFor((l) => l.t === "send" && l.topic === topic, 15_000);
      a.kill("SIGSTOP");
      const stoppedAt = Date.now();

      const acquired = await b.waitFor((l) => l.t === "leader:acquired", 20_000);
      expect(acquired.epoch).toBe(epochA + 1);
      await waitFor(
        "b to publish the rows",
        async () => (await epochsOf(topic)).every((s) => s === `published:${epochA + 1}`),
        20_000,
      );
      expect(await recordsIn(topic)).toBe(ROWS);

      // The partition heals and a's connections are reset, so a retry of its client would go through.
      fault.heal();
      fault.cut();
      const resumedAt = Date.now();
      a.kill("SIGCONT");
      const outcome = await a.waitFor((l) => (l.t === "sent" || l.t === "send:failed") && l.at >= resumedAt, 20_000);
      const lost = await a.waitFor((l) => l.t === "leader:lost" && l.at >= resumedAt, 10_000);
      // Time for a retry that slipped through to land.
      await new Promise((r) => setTimeout(r, 2000));
      const records = await recordsIn(topic);
      console.log(
        `[fault] ${client}: leader paused ${resumedAt - stoppedAt} ms inside a send, successor acquired ${acquired.at - stoppedAt} ms in; after resuming its send ended with "${outcome.t}" (${String(outcome.tag ?? "")} ${String(outcome.reason ?? "")}), it stepped down with "${String(lost.reason)}"; ${records} records in the topic for ${ROWS} rows`,
      );
      expect(outcome).toMatchObject({ t: "send:failed", tag: "LeadershipLostError" });
      expect(["lease-expired", "heartbeat-failed", "lock-lost", "fenced"]).toContain(outcome.reason);
      expect(records).toBe(ROWS);
      expect(await epochsOf(topic)).toEqual(Array.from({ length: ROWS }, () => `published:${epochA + 1}`));
      expect(a.lines.filter((l) => l.t === "batch:published" && l.epoch === epochA && l.at >= stoppedAt)).toEqual([]);
    },
  );
});
