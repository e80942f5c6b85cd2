import { createTopics, deleteTopics, kafkaBrokers, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ProcessRelay, spawnRelay } from "./process-relay.ts";
import {
  assertCompleteInOrder,
  countByStatus,
  readAllEvents,
  type RelayTestDb,
  kafkaClients,
  setupDatabase,
  startWriters,
  testEvent,
  testKafkaOptions,
} from "./support.ts";

// Relays as child processes, so they can be SIGKILLed and SIGSTOPped. Lease 3 s, heartbeat 500 ms.
const LEASE_MS = 3000;

describe("failover between relay processes", () => {
  let t: RelayTestDb;
  const killTopicKafkaJs = uniqueTopic("relay.sigkill.kafkajs");
  const killTopicPlatformatic = uniqueTopic("relay.sigkill.platformatic");
  const stopTopic = uniqueTopic("relay.sigstop");
  const children: ProcessRelay[] = [];

  const options = (instanceId: string) => ({
    connectionString: t.db.url,
    kafka: { brokers: kafkaBrokers, requestTimeoutMs: 5000 },
    topics: [killTopicKafkaJs, killTopicPlatformatic, stopTopic],
    instanceId,
    leaseMs: LEASE_MS,
    heartbeatIntervalMs: 500,
    acquireIntervalMs: 200,
    pollIntervalMs: 100,
    batchSize: 50,
    backoffBaseMs: 100,
    backoffMaxMs: 2000,
    retentionMs: 0,
  });
  const spawnOne = (name: string) => {
    const child = spawnRelay(name, options(name));
    children.push(child);
    return child;
  };

  beforeAll(async () => {
    t = await setupDatabase("el_relay_proc");
    await createTopics([
      { topic: killTopicKafkaJs, partitions: 3 },
      { topic: killTopicPlatformatic, partitions: 3 },
      { topic: stopTopic, partitions: 3 },
    ]);
  });
  afterAll(async () => {
    for (const c of children) {
      c.kill("SIGCONT");
      c.kill("SIGKILL");
    }
    await deleteTopics([killTopicKafkaJs, killTopicPlatformatic, stopTopic]);
    await t.close();
  });

  it.each(kafkaClients)(
    "SIGKILL of the leader (%s): a standby takes over, every key complete and in order",
    async (client) => {
      const killTopic = client === "kafkajs" ? killTopicKafkaJs : killTopicPlatformatic;
      const spawnOne = (name: string) => {
        const child = spawnRelay(name, { ...options(name), kafka: testKafkaOptions(client) });
        children.push(child);
        return child;
      };
      const a = spawnOne(`kill-a-${client}`);
      await a.waitFor((l) => l.t === "leader:acquired");
      const b = spawnOne(`kill-b-${client}`);
      await b.waitFor((l) => l.t === "started");
      const writers = startWriters(t, testEvent(killTopic), { writers: 3, keys: 10, prefix: "k", pauseMs: 2 });
      await waitFor("a publishes", () => a.lines.some((l) => l.t === "batch:published"), 15_000);
      await new Promise((r) => setTimeout(r, 500));
      const killedAt = Date.now();
      a.kill("SIGKILL");
      const acquired = await b.waitFor((l) => l.t === "leader:acquired");
      const takeoverMs = acquired.at - killedAt;
      await new Promise((r) => setTimeout(r, 500));
      const total = await writers.stop();
      await waitFor("outbox drained", async () => (await countByStatus(t.pool)).pending === undefined, 30_000);
      const messages = await readAllEvents(killTopic, total);
      const duplicates = assertCompleteInOrder(messages, total);
      console.log(`[fault] SIGKILL (${client}): takeover ${takeoverMs} ms, ${total} events, ${duplicates} duplicates`);
      // SIGKILL ends the session at once, so takeover is far below a lease.
      expect(takeoverMs).toBeLessThan(LEASE_MS);
      expect(acquired.epoch).toBe((a.lines.find((l) => l.t === "leader:acquired")!.epoch as number) + 1);
      b.kill("SIGTERM");
      await b.exited;
    },
  );

  it("SIGSTOP of the leader: a standby takes over within the lease; the resumed leader sends nothing and changes no row", async () => {
    const a = spawnOne("stop-a");
    const aAcquired = await a.waitFor((l) => l.t === "leader:acquired");
    const epochA = aAcquired.epoch as number;
    const b = spawnOne("stop-b");
    await b.waitFor((l) => l.t === "started");
    const writers = startWriters(t, testEvent(stopTopic), { writers: 3, keys: 10, prefix: "s", pauseMs: 2 });
    await waitFor("a publishes", () => a.lines.some((l) => l.t === "batch:published" && l.epoch === epochA), 15_000);
    await new Promise((r) => setTimeout(r, 300));
    a.kill("SIGSTOP");
    const stoppedAt = Date.now();
    const rowsOfA = async () =>
      Number(
        (
          await t.pool.query<{ n: string }>(
            "SELECT count(*)::text AS n FROM eventlane.outbox WHERE published_epoch = $1",
            [epochA],
          )
        ).rows[0]!.n,
      );
    const acquired = await b.waitFor((l) => l.t === "leader:acquired");
    const takeoverMs = acquired.at - stoppedAt;
    expect(acquired.epoch).toBe(epochA + 1);
    // Counted only now: a mark that a had sent before the signal still commits while a is stopped
    // (the server runs it without a), at any time until b's token write, which waits for it (the
    // mark holds the shard row FOR SHARE). From b's acquisition on, no row can be marked under epochA.
    const rowsAtTakeover = await rowsOfA();
    // Let b publish a while, then resume a.
    await new Promise((r) => setTimeout(r, 1000));
    const linesBeforeResume = a.lines.length;
    const resumedAt = Date.now();
    a.kill("SIGCONT");
    const lost = await a.waitFor((l) => l.t === "leader:lost", 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    const total = await writers.stop();
    await waitFor("outbox drained", async () => (await countByStatus(t.pool)).pending === undefined, 30_000);
    // After resuming, a sent nothing and published nothing under its stale epoch.
    const afterResume = a.lines.slice(linesBeforeResume);
    expect(afterResume.filter((l) => l.t === "send")).toEqual([]);
    // (A batch:published line may still appear: SIGSTOP can land between a batch's COMMIT and its
    // event, or while its mark is in flight. Those rows committed before b acquired and are in
    // rowsAtTakeover.)
    expect(["lease-expired", "heartbeat-failed", "lock-lost", "fenced"]).toContain(lost.reason);
    expect(lost.at).toBeGreaterThanOrEqual(resumedAt);
    expect(await rowsOfA()).toBe(rowsAtTakeover);
    const messages = await readAllEvents(stopTopic, total);
    const duplicates = assertCompleteInOrder(messages, total);
    console.log(
      `[fault] SIGSTOP: takeover ${takeoverMs} ms (lease ${LEASE_MS} ms), ${total} events, ${duplicates} duplicates, resumed leader stepped down with "${String(lost.reason)}"`,
    );
    // The server ends the silent session after idle_session_timeout = lease; takeover is about one lease.
    expect(takeoverMs).toBeGreaterThanOrEqual(LEASE_MS - 1000);
    expect(takeoverMs).toBeLessThan(LEASE_MS + 3000);
  });
});
