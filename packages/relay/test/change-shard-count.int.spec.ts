import { resolveTableNames } from "@eventlane/core";
import { uniqueTopic } from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { changeShardCount, LeadershipLostError } from "../src/index.ts";
import { advisoryLockNamespace, closeLockSession, openLockSession } from "../src/leader/lock-session.ts";
import { ShardLease } from "../src/leader/shard-lease.ts";
import { inFencedTransaction } from "../src/outbox-reader/fenced-transaction.ts";
import { relayStatements } from "../src/outbox-reader/statements.ts";
import { type RelayTestDb, setupDatabase, testEvent } from "./support.ts";

// changeShardCount refuses while any relay holds a shard lock, but a relay of the old count can have
// lost its lock (its session ended while it was paused or partitioned) and still carry its token.
// The change rotates the token and bumps the epoch of every shard it keeps, so that relay's fence
// fails at once instead of passing until someone acquires the shard again.
const LEASE_MS = 3000;

describe("changeShardCount fences the relays of the old count", () => {
  let t: RelayTestDb;
  const tables = resolveTableNames();
  const statements = relayStatements(tables);
  const topic = uniqueTopic("relay.change-count");

  const shardRows = async () =>
    (
      await t.pool.query<{ shard: number; token: string | null; epoch: string }>(
        "SELECT shard, token::text AS token, epoch::text AS epoch FROM eventlane.relay_shards ORDER BY shard",
      )
    ).rows.map((r) => ({ shard: r.shard, token: r.token, epoch: Number(r.epoch) }));
  const statusOf = async (id: string) =>
    (
      await t.pool.query<{ status: string; epoch: string | null }>(
        "SELECT status, published_epoch::text AS epoch FROM eventlane.outbox WHERE id = $1",
        [id],
      )
    ).rows[0];

  beforeAll(async () => {
    t = await setupDatabase("el_relay_change_count");
    await t.pool.query("INSERT INTO eventlane.relay_config (shard_count) VALUES (4)");
    await t.pool.query("INSERT INTO eventlane.relay_shards (shard) SELECT generate_series(0, 3)");
  });
  afterAll(async () => {
    await t.close();
  });

  it("a relay of the old count that lost its lock can no longer mark rows after the change", async () => {
    // A leader of shard 0 under 4 shards; then its lock session ends, the lease object lives on.
    const session = await openLockSession({ connectionString: t.db.url, leaseMs: LEASE_MS, applicationName: "old" });
    const old = await ShardLease.tryAcquire({
      client: session,
      tables,
      namespace: advisoryLockNamespace(tables),
      shard: 0,
      owner: "old-count",
      leaseMs: LEASE_MS,
      shardCount: 4,
    });
    expect(old).toBeDefined();
    const lease = old!;
    await closeLockSession(session, 1000);
    await t.store.enqueue(t.kysely, testEvent(topic), { key: "k", n: 1 });
    await t.store.enqueue(t.kysely, testEvent(topic), { key: "k", n: 2 });
    const ids = (
      await t.pool.query<{ id: string }>("SELECT id::text AS id FROM eventlane.outbox WHERE topic = $1 ORDER BY id", [
        topic,
      ])
    ).rows.map((r) => r.id);
    expect(ids).toHaveLength(2);

    // Before the change its token still passes the fence: it can mark a row.
    await inFencedTransaction(t.pool, statements, lease, (client) =>
      client.query({ ...statements.markPublished, values: [[ids[0]], lease.epoch] }),
    );
    expect(await statusOf(ids[0]!)).toEqual({ status: "published", epoch: String(lease.epoch) });
    const before = await shardRows();

    expect(await changeShardCount(t.kysely, 2)).toEqual({ previous: 4, shardCount: 2 });

    // Kept shards: a new token and the next epoch each; the others are gone.
    const after = await shardRows();
    expect(after.map((r) => r.shard)).toEqual([0, 1]);
    for (const row of after) {
      const was = before.find((b) => b.shard === row.shard)!;
      expect(row.epoch).toBe(was.epoch + 1);
      expect(row.token).not.toBeNull();
      expect(row.token).not.toBe(was.token);
    }
    expect(after[0]!.token).not.toBe(lease.token);

    // The old relay's fenced transaction fails and changes nothing ...
    const fenced = await inFencedTransaction(t.pool, statements, lease, (client) =>
      client.query({ ...statements.markPublished, values: [[ids[1]], lease.epoch] }),
    ).catch((e: unknown) => e);
    expect(fenced).toBeInstanceOf(LeadershipLostError);
    expect((fenced as LeadershipLostError).reason).toBe("fenced");
    // ... and so does its one-statement mark of a published batch.
    const marked = await t.pool.query<{ token: string | null; marked: number }>({
      ...statements.markPublishedFenced,
      values: [[ids[1]], lease.epoch, 0, lease.token],
    });
    expect(marked.rows[0]).toEqual({ token: after[0]!.token, marked: 0 });
    expect(await statusOf(ids[1]!)).toEqual({ status: "pending", epoch: null });

    // A relay of the new count acquires shard 0 with the epoch after the rotated one.
    const fresh = await openLockSession({ connectionString: t.db.url, leaseMs: LEASE_MS, applicationName: "new" });
    try {
      const lead = await ShardLease.tryAcquire({
        client: fresh,
        tables,
        namespace: advisoryLockNamespace(tables),
        shard: 0,
        owner: "new-count",
        leaseMs: LEASE_MS,
        shardCount: 2,
      });
      expect(lead?.epoch).toBe(lease.epoch + 2);
      await lead!.release();
    } finally {
      await closeLockSession(fresh, 1000);
    }
  });
});
