import { resolveTableNames } from "@eventlane/core";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeadershipLostError, ProducerSendError } from "../src/index.ts";
import type { LeaseClocks } from "../src/leader/lease-clock.ts";
import { advisoryLockNamespace, closeLockSession, openLockSession } from "../src/leader/lock-session.ts";
import { SEND_MARGIN_FRACTION, ShardLease } from "../src/leader/shard-lease.ts";
import { type RelayTestDb, setupDatabase } from "./support.ts";

// A real shard lease (lock session, token, heartbeats against PostgreSQL) timed on clocks the test
// moves by hand: the lease, and the send deadline it hands to the producer, are over as soon as
// either clock says so.
const LEASE_MS = 3000;
const MARGIN_MS = LEASE_MS * SEND_MARGIN_FRACTION;

function fakeClocks() {
  let wall = Date.now();
  let monotonic = 1_000_000;
  const clocks: LeaseClocks = { wall: () => wall, monotonic: () => monotonic };
  return {
    clocks,
    tick(ms: number) {
      wall += ms;
      monotonic += ms;
    },
    stepWall(ms: number) {
      wall += ms;
    },
    stepMonotonic(ms: number) {
      monotonic += ms;
    },
  };
}

/** The error `fn` throws (or undefined). */
function thrown(fn: () => void): unknown {
  try {
    fn();
    return undefined;
  } catch (error) {
    return error;
  }
}

describe("a shard lease timed on the wall clock and the monotonic clock", () => {
  let t: RelayTestDb;
  const tables = resolveTableNames();
  const namespace = advisoryLockNamespace(tables);
  const sessions: pg.Client[] = [];

  const acquire = async (shard: number, clocks: LeaseClocks) => {
    const client = await openLockSession({
      connectionString: t.db.url,
      leaseMs: LEASE_MS,
      applicationName: "lease test",
    });
    sessions.push(client);
    const lease = await ShardLease.tryAcquire({
      client,
      tables,
      namespace,
      shard,
      owner: `lease-test-${shard}`,
      leaseMs: LEASE_MS,
      shardCount: 4,
      clocks,
    });
    expect(lease).toBeDefined();
    return lease!;
  };

  beforeAll(async () => {
    t = await setupDatabase("el_relay_lease");
    await t.pool.query("INSERT INTO eventlane.relay_config (shard_count) VALUES (4)");
  });
  afterAll(async () => {
    for (const s of sessions) await closeLockSession(s, 1000);
    await t.close();
  });

  it("the send deadline closes a margin before the lease ends, and a heartbeat moves both on", async () => {
    const c = fakeClocks();
    const lease = await acquire(0, c.clocks);
    expect(lease.sendDeadline.writableMs()).toBe(LEASE_MS - MARGIN_MS);
    expect(lease.sendDeadline.settleMs()).toBe(LEASE_MS);
    c.tick(LEASE_MS - MARGIN_MS);
    // Within the margin: the lease holds, but no request may start; the shard backs off.
    expect(thrown(() => lease.assertValid())).toBeUndefined();
    const withinMargin = thrown(() => lease.assertMaySend());
    expect(withinMargin).toBeInstanceOf(ProducerSendError);
    expect((withinMargin as ProducerSendError).reason).toBe("timeout");
    await lease.heartbeat();
    expect(lease.sendDeadline.writableMs()).toBe(LEASE_MS - MARGIN_MS);
    expect(thrown(() => lease.assertMaySend())).toBeUndefined();
  });

  it("wall clock stepped back: the monotonic clock ends the lease, and the send deadline with it", async () => {
    const c = fakeClocks();
    const lease = await acquire(1, c.clocks);
    c.stepWall(-60_000);
    c.stepMonotonic(LEASE_MS);
    expect(lease.sendDeadline.writableMs()).toBeLessThanOrEqual(0);
    expect(lease.sendDeadline.settleMs()).toBeLessThanOrEqual(0);
    const error = thrown(() => lease.assertMaySend());
    expect(error).toBeInstanceOf(LeadershipLostError);
    expect((error as LeadershipLostError).reason).toBe("lease-expired");
    expect(thrown(() => lease.assertValid())).toBeInstanceOf(LeadershipLostError);
    // An expired lease is never renewed, whatever the server would answer.
    await expect(lease.heartbeat()).rejects.toMatchObject({ reason: "lease-expired" });
  });

  it("monotonic clock stalled (a suspend): the wall clock ends the lease, and the send deadline with it", async () => {
    const c = fakeClocks();
    const lease = await acquire(2, c.clocks);
    c.tick(200);
    c.stepWall(LEASE_MS);
    expect(lease.sendDeadline.writableMs()).toBeLessThanOrEqual(0);
    expect(lease.sendDeadline.closedError()).toMatchObject({ _tag: "LeadershipLostError", reason: "lease-expired" });
    expect(thrown(() => lease.assertValid())).toMatchObject({ reason: "lease-expired" });
    await expect(lease.heartbeat()).rejects.toMatchObject({ reason: "lease-expired" });
  });

  it("a lease marked lost closes its send deadline at once", async () => {
    const c = fakeClocks();
    const lease = await acquire(3, c.clocks);
    expect(lease.sendDeadline.writableMs()).toBeGreaterThan(0);
    lease.markLost("heartbeat-failed");
    expect(lease.sendDeadline.writableMs()).toBeLessThanOrEqual(0);
    expect(lease.sendDeadline.closedError()).toMatchObject({ reason: "heartbeat-failed" });
  });
});
