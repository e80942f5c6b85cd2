import {
  createTopics,
  deleteTopics,
  startFaultProxy,
  uniqueTopic,
  waitFor,
  type FaultProxy,
} from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRelay, type Relay, type RelayEvents } from "../src/index.ts";
import {
  assertCompleteInOrder,
  countByStatus,
  readAllEvents,
  type RelayTestDb,
  setupDatabase,
  startWriters,
  testEvent,
  testRelayOptions,
} from "./support.ts";

const LEASE_MS = 3000;

interface Tracked {
  readonly relay: Relay;
  readonly name: string;
  readonly acquired: { at: number; epoch: number }[];
  readonly lost: { at: number; reason: string }[];
}

describe("leadership among relay instances in one process", () => {
  let t: RelayTestDb;
  const manyTopic = uniqueTopic("relay.three");
  const termTopic = uniqueTopic("relay.terminate");
  const holeTopic = uniqueTopic("relay.blackhole");
  const healTopic = uniqueTopic("relay.healed");
  const topics = [manyTopic, termTopic, holeTopic, healTopic];
  const running: Relay[] = [];
  let proxy: FaultProxy | undefined;

  const track = async (name: string, url = t.db.url, statementTimeoutMs?: number): Promise<Tracked> => {
    const relay = createRelay(
      testRelayOptions(url, topics, {
        instanceId: name,
        leaseMs: LEASE_MS,
        batchSize: 50,
        ...(statementTimeoutMs === undefined ? {} : { statementTimeoutMs }),
      }),
    );
    const tracked: Tracked = { relay, name, acquired: [], lost: [] };
    relay.on("leader:acquired", (e: RelayEvents["leader:acquired"]) =>
      tracked.acquired.push({ at: Date.now(), epoch: e.epoch }),
    );
    relay.on("leader:lost", (e) => tracked.lost.push({ at: Date.now(), reason: e.reason }));
    await relay.start();
    running.push(relay);
    return tracked;
  };
  const leaderOf = (ts: readonly Tracked[]) => ts.find((x) => x.relay.status().shards[0]!.leader);
  const drained = () =>
    waitFor("outbox drained", async () => (await countByStatus(t.pool)).pending === undefined, 30_000);

  beforeAll(async () => {
    t = await setupDatabase("el_relay_failover");
    await createTopics(topics.map((topic) => ({ topic, partitions: 3 })));
  });
  afterAll(async () => {
    await Promise.all(running.map((r) => r.stop()));
    await proxy?.close();
    await deleteTopics(topics);
    await t.close();
  });

  it("three instances, concurrent writers, two hand-overs: every key complete and in order, one leader at a time", async () => {
    const all = [await track("r1"), await track("r2"), await track("r3")];
    await waitFor("a leader", () => leaderOf(all) !== undefined, 10_000);
    const writers = startWriters(t, testEvent(manyTopic), { writers: 4, keys: 8, prefix: "m", pauseMs: 1 });
    for (let round = 0; round < 2; round++) {
      await new Promise((r) => setTimeout(r, 700));
      const leader = leaderOf(all)!;
      // A graceful stop hands the shard over.
      await leader.relay.stop();
      await waitFor("another leader", () => leaderOf(all) !== undefined, 10_000);
    }
    await new Promise((r) => setTimeout(r, 500));
    const total = await writers.stop();
    await drained();
    const messages = await readAllEvents(manyTopic, total);
    const duplicates = assertCompleteInOrder(messages, total);
    console.log(`[fault] graceful hand-over x2 among 3 instances: ${total} events, ${duplicates} duplicates`);
    expect(duplicates).toBe(0);
    // Epochs strictly increase with each acquisition, so no two leaders shared one.
    const epochs = all.flatMap((x) => x.acquired.map((a) => a.epoch)).sort((a, b) => a - b);
    expect(new Set(epochs).size).toBe(epochs.length);
    expect(epochs.length).toBe(3);
    for (const r of running.splice(0)) await r.stop();
  });

  it("pg_terminate_backend of the leader's lock session: it steps down, a standby takes over", async () => {
    const a = await track("t-a");
    await waitFor("a leads", () => a.acquired.length === 1, 10_000);
    const b = await track("t-b");
    const writers = startWriters(t, testEvent(termTopic), { writers: 3, keys: 10, prefix: "t", pauseMs: 2 });
    await new Promise((r) => setTimeout(r, 800));
    const at = Date.now();
    const killed = await t.pool.query(
      `SELECT pg_terminate_backend(pid) FROM pg_locks
        WHERE locktype = 'advisory' AND objid = 0 AND objsubid = 2 AND granted
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    expect(killed.rowCount).toBe(1);
    await waitFor("a takeover", () => b.acquired.length === 1 || a.acquired.length === 2, 10_000, 5);
    const takeoverMs = Math.max(b.acquired[0]?.at ?? 0, a.acquired[1]?.at ?? 0) - at;
    await waitFor("a stepped down", () => a.lost.length >= 1, 5000);
    await new Promise((r) => setTimeout(r, 500));
    const total = await writers.stop();
    await drained();
    const duplicates = assertCompleteInOrder(await readAllEvents(termTopic, total), total);
    console.log(
      `[fault] pg_terminate_backend: takeover ${takeoverMs} ms by ${b.acquired.length === 1 ? "the standby" : "the same instance"}, old leader stepped down with "${a.lost[0]!.reason}", ${total} events, ${duplicates} duplicates`,
    );
    // Detected by the next heartbeat (500 ms); well within the lease.
    expect(takeoverMs).toBeLessThan(LEASE_MS);
    for (const r of running.splice(0)) await r.stop();
  });

  it("the leader's connection blackholed: it fences itself, the server ends its session, a standby takes over", async () => {
    proxy = await startFaultProxy({ host: "127.0.0.1", port: 5432 });
    const a = await track("h-a", t.db.urlVia("127.0.0.1", proxy.port));
    await waitFor("a leads", () => a.acquired.length === 1, 10_000);
    const b = await track("h-b");
    const writers = startWriters(t, testEvent(holeTopic), { writers: 3, keys: 10, prefix: "h", pauseMs: 2 });
    await new Promise((r) => setTimeout(r, 800));
    const at = Date.now();
    proxy.blackhole();
    await waitFor("b takes over", () => b.acquired.length === 1, 3 * LEASE_MS);
    const takeoverMs = b.acquired[0]!.at - at;
    await waitFor("a stepped down", () => a.lost.length >= 1, LEASE_MS * 2);
    const selfFencedMs = a.lost[0]!.at - at;
    await new Promise((r) => setTimeout(r, 500));
    const total = await writers.stop();
    await drained();
    const duplicates = assertCompleteInOrder(await readAllEvents(holeTopic, total), total);
    console.log(
      `[fault] blackholed connection: old leader stepped down after ${selfFencedMs} ms ("${a.lost[0]!.reason}"), takeover ${takeoverMs} ms, ${total} events, ${duplicates} duplicates`,
    );
    // The old leader stops trusting its lease no later than the server can end its session.
    expect(a.lost[0]!.at).toBeLessThanOrEqual(b.acquired[0]!.at);
    expect(takeoverMs).toBeGreaterThanOrEqual(LEASE_MS - 1000);
    expect(takeoverMs).toBeLessThan(LEASE_MS * 2 + 1000);
  });

  it("after a partition heals, the former leader can lead again at once: its silent connections are gone", async () => {
    // The default statement timeout (30 s): a data connection that went silent must not keep the
    // instance stuck for that long, nor cost a query deadline each when it is next used.
    // The instances of the tests before step down first: this test needs the shard to itself.
    await Promise.all(running.splice(0).map((r) => r.stop()));
    const heal = await startFaultProxy({ host: "127.0.0.1", port: 5432 });
    try {
      const a = await track("p-a", t.db.urlVia("127.0.0.1", heal.port), 30_000);
      await waitFor("a leads", () => a.acquired.length === 1, 10_000);
      const b = await track("p-b", t.db.url, 30_000);
      const writers = startWriters(t, testEvent(healTopic), { writers: 2, keys: 5, prefix: "p", pauseMs: 2 });
      await new Promise((r) => setTimeout(r, 500));
      heal.blackhole();
      await waitFor("b takes over", () => b.acquired.length === 1, 3 * LEASE_MS);
      heal.heal();
      await new Promise((r) => setTimeout(r, 1500));
      let firstPublishAt: number | undefined;
      const stoppedAt = Date.now();
      a.relay.on("batch:published", () => {
        if (a.acquired.length === 2) firstPublishAt ??= Date.now();
      });
      await b.relay.stop();
      await waitFor("a leads again", () => a.acquired.length === 2, 3 * LEASE_MS);
      // a publishes as soon as it leads (the writers keep writing).
      await waitFor("a publishes again", () => firstPublishAt !== undefined, 3 * LEASE_MS, 20);
      const recoveredMs = firstPublishAt! - stoppedAt;
      const total = await writers.stop();
      await drained();
      assertCompleteInOrder(await readAllEvents(healTopic, total), total);
      console.log(
        `[fault] healed partition: the former leader published again ${recoveredMs} ms after the other stopped`,
      );
      expect(recoveredMs).toBeLessThan(LEASE_MS + 1500);
    } finally {
      await heal.close();
    }
  });
});
