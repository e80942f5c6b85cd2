import { createTopics, deleteTopics, kafkaBrokers, uniqueTopic, waitFor } from "@eventlane/test-kit";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type ProcessRelay, spawnRelay } from "./process-relay.ts";
import { type RelayTestDb, setupDatabase, testEvent } from "./support.ts";

// The leader is SIGSTOPped while its fenced mark is in flight: the test holds a lock the mark needs,
// so the mark is still running on the server when the process stops. Whatever happens next, no row
// may be marked under the old epoch once the successor has acquired the shard (DESIGN invariant 5).
// Relays as child processes; lease 3 s, heartbeat 500 ms.
const LEASE_MS = 3000;
const ROWS = 5;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface RowState {
  readonly status: string;
  readonly epoch: number | null;
}

describe("a leader paused while its mark is in flight", () => {
  let t: RelayTestDb;
  const topic = uniqueTopic("relay.mark-in-flight");
  const event = testEvent(topic);
  const children: ProcessRelay[] = [];
  const holders: pg.Client[] = [];

  const spawnOne = (name: string) => {
    const child = spawnRelay(name, {
      connectionString: t.db.url,
      kafka: { brokers: kafkaBrokers, requestTimeoutMs: 5000 },
      topics: [topic],
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
  const park = (key: string) =>
    t.pool.query(
      "INSERT INTO eventlane.parked_keys (topic, key, outbox_id, reason) VALUES ($1, $2, 0, 'held back by the test')",
      [topic, key],
    );
  const unpark = (key: string) =>
    t.pool.query("DELETE FROM eventlane.parked_keys WHERE topic = $1 AND key = $2", [topic, key]);

  const rowsOfKey = async (key: string): Promise<RowState[]> =>
    (
      await t.pool.query<{ status: string; epoch: string | null }>(
        "SELECT status, published_epoch::text AS epoch FROM eventlane.outbox WHERE topic = $1 AND key = $2 ORDER BY id",
        [topic, key],
      )
    ).rows.map((r) => ({ status: r.status, epoch: r.epoch === null ? null : Number(r.epoch) }));
  const rowsMarkedUnder = async (epoch: number) =>
    Number(
      (
        await t.pool.query<{ n: string }>(
          "SELECT count(*)::text AS n FROM eventlane.outbox WHERE published_epoch = $1",
          [epoch],
        )
      ).rows[0]!.n,
    );
  const shardEpoch = async () =>
    Number(
      (await t.pool.query<{ epoch: string }>("SELECT epoch::text AS epoch FROM eventlane.relay_shards WHERE shard = 0"))
        .rows[0]!.epoch,
    );
  /** Whether backend `pid` is running a statement that waits for a lock of backend `holderPid`. */
  const waitsOn = async (pid: number, holderPid: number) =>
    (
      await t.pool.query<{ waits: boolean }>(
        "SELECT state = 'active' AND $2::integer = ANY(pg_blocking_pids(pid)) AS waits FROM pg_stat_activity WHERE pid = $1",
        [pid, holderPid],
      )
    ).rows[0]?.waits === true;

  /**
   * Leader `a` (its epoch), standby `b`, ROWS rows of `key` that `a` has not read yet (the key is
   * parked), and `holder`: a session in an open transaction, for the lock that will hold a's mark.
   */
  async function scenario(key: string) {
    const a = spawnOne(`${key}-a`);
    const epochA = (await a.waitFor((l) => l.t === "leader:acquired")).epoch as number;
    const b = spawnOne(`${key}-b`);
    await b.waitFor((l) => l.t === "started");
    await park(key);
    for (let n = 1; n <= ROWS; n++) await t.store.enqueue(t.kysely, event, { key, n });
    const ids = (
      await t.pool.query<{ id: string }>(
        "SELECT id::text AS id FROM eventlane.outbox WHERE topic = $1 AND key = $2 ORDER BY id",
        [topic, key],
      )
    ).rows.map((r) => r.id);
    expect(ids).toHaveLength(ROWS);
    const holder = new pg.Client({ connectionString: t.db.url });
    holder.on("error", () => undefined);
    await holder.connect();
    holders.push(holder);
    const holderPid = (await holder.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
    await holder.query("BEGIN");
    return { a, b, epochA, ids, holder, holderPid };
  }

  /**
   * Lets `a` read the rows of `key` and waits until they are in Kafka and a's fenced mark of them
   * waits for the holder's lock; returns the backend running that mark.
   */
  async function markInFlight(a: ProcessRelay, key: string, holderPid: number): Promise<number> {
    await unpark(key);
    await a.waitFor((l) => l.t === "send" && l.topic === topic, 15_000);
    let pid: number | undefined;
    await waitFor(
      "a's fenced mark to wait for the test's lock",
      async () => {
        const r = await t.pool.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity
            WHERE $1::integer = ANY(pg_blocking_pids(pid)) AND query LIKE 'WITH fence AS%published_epoch%'`,
          [holderPid],
        );
        pid = r.rows[0]?.pid;
        return pid !== undefined;
      },
      15_000,
    );
    expect(a.lines.filter((l) => l.t === "send" && l.topic === topic).map((l) => l.count)).toEqual([ROWS]);
    return pid!;
  }

  /** Resumes `a`, waits for it to step down and settle; it must send nothing more. */
  async function resume(a: ProcessRelay): Promise<void> {
    const from = a.lines.length;
    const resumedAt = Date.now();
    a.kill("SIGCONT");
    const lost = await a.waitFor((l) => l.t === "leader:lost" && l.at >= resumedAt, 10_000);
    expect(["lease-expired", "heartbeat-failed", "lock-lost", "fenced"]).toContain(lost.reason);
    await sleep(1000);
    expect(a.lines.slice(from).filter((l) => l.t === "send")).toEqual([]);
  }

  beforeAll(async () => {
    t = await setupDatabase("el_relay_mark_in_flight");
    await createTopics([{ topic, partitions: 1 }]);
  });
  // Each test starts with no relay running, so the shard is free.
  afterEach(async () => {
    for (const h of holders.splice(0)) await h.end().catch(() => undefined);
    for (const c of children.splice(0)) {
      c.kill("SIGCONT");
      c.kill("SIGKILL");
      await c.exited;
    }
  });
  afterAll(async () => {
    await deleteTopics([topic]);
    await t.close();
  });

  it("mark past its fence (the shard row FOR SHARE): no successor acquires until it commits, and it commits under the old epoch", async () => {
    const key = "past-fence";
    const s = await scenario(key);
    // The rows FOR SHARE: a's UPDATE waits for them after its fence has locked the shard row, with
    // the token of epochA checked.
    await s.holder.query("SELECT id FROM eventlane.outbox WHERE id = ANY($1::bigint[]) FOR SHARE", [s.ids]);
    const markPid = await markInFlight(s.a, key, s.holderPid);
    s.a.kill("SIGSTOP");
    // Hold the mark for well over a lease. Without the fence's FOR SHARE, a's lock session would
    // have been ended by now, b would have written its token, and the mark (whose token check
    // already passed) would then commit under epochA after b's acquisition.
    await sleep(LEASE_MS + 2000);
    expect(await waitsOn(markPid, s.holderPid)).toBe(true);
    // Who waits for the mark: b's token write (a's lock session was idle at the stop, so the server
    // ended it) or a's own heartbeat (it updates the shard row too, and kept a's lock session busy).
    const waiting = (
      await t.pool.query<{ query: string }>(
        "SELECT query FROM pg_stat_activity WHERE $1::integer = ANY(pg_blocking_pids(pid))",
        [markPid],
      )
    ).rows.map(({ query }) =>
      query.includes("ON CONFLICT (shard)") ? "b's acquisition" : query.includes("WITH beat") ? "a's heartbeat" : query,
    );
    expect(s.b.lines.filter((l) => l.t === "leader:acquired")).toEqual([]);
    expect(await shardEpoch()).toBe(s.epochA);

    await s.holder.query("COMMIT");
    const releasedAt = Date.now();
    const acquired = await s.b.waitFor((l) => l.t === "leader:acquired", 20_000);
    expect(acquired.epoch).toBe(s.epochA + 1);
    // The mark committed before b's acquisition.
    const atTakeover = await rowsMarkedUnder(s.epochA);
    expect(await rowsOfKey(key)).toEqual(s.ids.map(() => ({ status: "published", epoch: s.epochA })));
    console.log(
      `[fault] mark past its fence: waited on by ${JSON.stringify(waiting)}; b acquired ${acquired.at - releasedAt} ms after the mark could go on`,
    );

    await resume(s.a);
    expect(await rowsMarkedUnder(s.epochA)).toBe(atTakeover);
  });

  it("mark not yet at its fence: the successor acquires while it is in flight, and the token check rejects it", async () => {
    const key = "before-fence";
    const s = await scenario(key);
    // SHARE on the outbox table: a's mark waits for its ROW EXCLUSIVE lock on the table before the
    // statement runs, so before its fence reads the shard row. Reads (and the shard row) stay free.
    await s.holder.query("LOCK TABLE eventlane.outbox IN SHARE MODE");
    const markPid = await markInFlight(s.a, key, s.holderPid);
    // Parked again, b leaves these rows alone: the only statement that could mark them is a's.
    await park(key);
    s.a.kill("SIGSTOP");
    const acquired = await s.b.waitFor((l) => l.t === "leader:acquired", 20_000);
    expect(acquired.epoch).toBe(s.epochA + 1);
    expect(await waitsOn(markPid, s.holderPid)).toBe(true);
    const atTakeover = await rowsMarkedUnder(s.epochA);

    await s.holder.query("COMMIT");
    await waitFor(
      "a's mark to end",
      async () =>
        (await t.pool.query<{ state: string | null }>("SELECT state FROM pg_stat_activity WHERE pid = $1", [markPid]))
          .rows[0]?.state !== "active",
      10_000,
    );
    // The fence saw b's token: the mark changed nothing.
    expect(await rowsOfKey(key)).toEqual(s.ids.map(() => ({ status: "pending", epoch: null })));
    expect(await rowsMarkedUnder(s.epochA)).toBe(atTakeover);

    await resume(s.a);
    await unpark(key);
    await waitFor("b to publish the rows", async () => (await rowsOfKey(key)).every((r) => r.status === "published"));
    expect(await rowsOfKey(key)).toEqual(s.ids.map(() => ({ status: "published", epoch: s.epochA + 1 })));
    expect(await rowsMarkedUnder(s.epochA)).toBe(atTakeover);
  });
});
