import { createTopics, deleteTopics, kafkaBrokers, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { changeShardCount, createRelay, ShardCountMismatchError, ShardsHeldError } from "../src/index.ts";
import { type ProcessRelay, spawnRelay } from "./process-relay.ts";
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
const SHARDS = 4;

/** The shards a relay process leads now, from its acquired / lost lines. */
function ledBy(p: ProcessRelay): Set<number> {
  const led = new Set<number>();
  for (const l of p.lines) {
    if (l.t === "leader:acquired") led.add(l.shard as number);
    if (l.t === "leader:lost") led.delete(l.shard as number);
  }
  return led;
}

describe("shards balanced across relay instances", () => {
  let t: RelayTestDb;
  const topic = uniqueTopic("relay.shards");
  const countTopic = uniqueTopic("relay.shardcount");
  const children: ProcessRelay[] = [];

  const spawnOne = (name: string) => {
    const child = spawnRelay(name, {
      connectionString: t.db.url,
      kafka: { brokers: kafkaBrokers, requestTimeoutMs: 5000 },
      topics: [topic],
      instanceId: name,
      shardCount: SHARDS,
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

  beforeAll(async () => {
    t = await setupDatabase("el_relay_shards");
    await createTopics([
      { topic, partitions: 3 },
      { topic: countTopic, partitions: 1 },
    ]);
  });
  afterAll(async () => {
    for (const c of children) {
      c.kill("SIGCONT");
      c.kill("SIGKILL");
    }
    await deleteTopics([topic, countTopic]);
    await t.close();
  });

  it("4 shards over 2 then 3 instances: shares balance, one leader per shard at a time, a killed instance's shards are taken over within the lease, every key complete and in order", async () => {
    const writers = startWriters(t, testEvent(topic), { writers: 3, keys: 40, prefix: "s", pauseMs: 2 });
    const a = spawnOne("shard-a");
    await waitFor("a leads every shard", () => ledBy(a).size === SHARDS, 15_000);

    const bStarted = Date.now();
    const b = spawnOne("shard-b");
    await waitFor("2 + 2", () => ledBy(a).size === 2 && ledBy(b).size === 2, 15_000);
    const twoWayMs = Date.now() - bStarted;

    const cStarted = Date.now();
    const c = spawnOne("shard-c");
    const all = [a, b, c];
    await waitFor(
      "2 + 1 + 1",
      () => all.every((p) => ledBy(p).size >= 1) && all.reduce((n, p) => n + ledBy(p).size, 0) === SHARDS,
      15_000,
    );
    const threeWayMs = Date.now() - cStarted;
    await new Promise((r) => setTimeout(r, 500));

    // Kill an instance that leads two shards: both must move to the survivors.
    const victim = all.find((p) => ledBy(p).size === 2)!;
    const survivors = all.filter((p) => p !== victim);
    const orphaned = [...ledBy(victim)];
    const killedAt = Date.now();
    victim.kill("SIGKILL");
    await waitFor(
      "the survivors lead every shard",
      () => survivors.reduce((n, p) => n + ledBy(p).size, 0) === SHARDS,
      LEASE_MS * 2,
      10,
    );
    const takeoverMs = Date.now() - killedAt;
    // The orphans may first land on one survivor; the balancer then settles the shares.
    await waitFor("the survivors settle at 2 + 2", () => survivors.every((p) => ledBy(p).size === 2), 15_000);
    await new Promise((r) => setTimeout(r, 500));
    const total = await writers.stop();
    await waitFor("outbox drained", async () => (await countByStatus(t.pool)).pending === undefined, 30_000);
    const duplicates = assertCompleteInOrder(await readAllEvents(topic, total), total);
    console.log(
      `[shards] 4 shards: 1 -> 2 instances balanced in ${twoWayMs} ms, 2 -> 3 in ${threeWayMs} ms; SIGKILL of an instance leading shards ${orphaned.join(", ")}: taken over in ${takeoverMs} ms (lease ${LEASE_MS} ms); ${total} events, ${duplicates} duplicates`,
    );
    expect(takeoverMs).toBeLessThan(LEASE_MS);

    // Every (shard, epoch) was acquired by one instance only, and per shard the leaderships never
    // overlapped: each acquisition comes after the previous leader's loss (or its kill).
    const acquisitions = new Map<number, { at: number; end: number; epoch: number; who: string }[]>();
    for (const p of all) {
      let open: { shard: number; at: number; epoch: number }[] = [];
      for (const l of p.lines) {
        if (l.t === "leader:acquired") open.push({ shard: l.shard as number, at: l.at, epoch: l.epoch as number });
        if (l.t === "leader:lost") {
          const o = open.find((x) => x.shard === l.shard);
          open = open.filter((x) => x !== o);
          if (o !== undefined) push(o, l.at, p.name);
        }
      }
      for (const o of open) push(o, p === victim ? killedAt : Number.POSITIVE_INFINITY, p.name);
    }
    function push(o: { shard: number; at: number; epoch: number }, end: number, who: string) {
      const list = acquisitions.get(o.shard) ?? [];
      list.push({ at: o.at, end, epoch: o.epoch, who });
      acquisitions.set(o.shard, list);
    }
    let handOvers = 0;
    for (const [, list] of acquisitions) {
      list.sort((x, y) => x.epoch - y.epoch);
      expect(new Set(list.map((x) => x.epoch)).size).toBe(list.length);
      for (let i = 1; i < list.length; i++) {
        expect(list[i]!.at).toBeGreaterThanOrEqual(list[i - 1]!.end);
        if (list[i]!.who !== list[i - 1]!.who) handOvers++;
      }
    }
    expect(handOvers).toBeGreaterThanOrEqual(2 + 1 + orphaned.length);

    // In the database: per shard, the epochs that marked rows never interleave (a mark of an older
    // epoch never follows one of a newer epoch).
    const marks = await t.pool.query<{ shard: number; epoch: string }>(
      `SELECT (key_hash & 2147483647) % ${SHARDS} AS shard, published_epoch::text AS epoch
         FROM eventlane.outbox WHERE status = 'published' ORDER BY published_at, id`,
    );
    const lastEpoch = new Map<number, number>();
    const epochsSeen = new Map<number, Set<number>>();
    for (const m of marks.rows) {
      const epoch = Number(m.epoch);
      expect(epoch).toBeGreaterThanOrEqual(lastEpoch.get(m.shard) ?? 0);
      lastEpoch.set(m.shard, epoch);
      const seen = epochsSeen.get(m.shard) ?? new Set();
      seen.add(epoch);
      epochsSeen.set(m.shard, seen);
    }
    // Each epoch that marked rows belongs to one acquisition.
    for (const [shard, seen] of epochsSeen) {
      const known = new Set((acquisitions.get(shard) ?? []).map((x) => x.epoch));
      for (const e of seen) expect(known.has(e)).toBe(true);
    }
    for (const p of survivors) p.kill("SIGTERM");
    await Promise.all(survivors.map((p) => p.exited));
  });

  it("changing the shard count: refused while a relay holds a shard; then relays with the old count are refused", async () => {
    // Whatever the test before left running steps down first: this test needs every shard free.
    for (const c of children) {
      c.kill("SIGCONT");
      c.kill("SIGKILL");
    }
    await Promise.all(children.map((c) => c.exited));
    const relay = createRelay(testRelayOptions(t.db.url, [countTopic], { shardCount: SHARDS, instanceId: "count-1" }));
    await relay.start();
    await waitFor("it leads", () => relay.status().shards.some((s) => s.leader), 10_000);
    const refused = await changeShardCount(t.kysely, 2).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ShardsHeldError);
    expect((refused as ShardsHeldError).code).toBe("EVENTLANE_RELAY_SHARDS_HELD");
    expect((refused as ShardsHeldError).shards.length).toBeGreaterThan(0);
    await relay.stop();

    expect(await changeShardCount(t.kysely, 2)).toEqual({ previous: SHARDS, shardCount: 2 });
    const rows = await t.pool.query<{ shard: number }>("SELECT shard FROM eventlane.relay_shards ORDER BY shard");
    expect(rows.rows.map((r) => r.shard)).toEqual([0, 1]);
    const old = createRelay(testRelayOptions(t.db.url, [countTopic], { shardCount: SHARDS }));
    await expect(old.start()).rejects.toBeInstanceOf(ShardCountMismatchError);
    const fresh = createRelay(testRelayOptions(t.db.url, [countTopic], { shardCount: 2 }));
    await fresh.start();
    await waitFor("both shards led", () => fresh.status().shards.every((s) => s.leader), 10_000);
    await fresh.stop();
  });
});
