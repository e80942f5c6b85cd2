import type { TableNames } from "@eventlane/core";
import { randomUUID } from "node:crypto";
import type pg from "pg";
import {
  type LeadershipLossReason,
  LeadershipLostError,
  SessionPoolerError,
  ShardCountMismatchError,
} from "../errors.ts";
import type { Fence } from "../outbox-reader/fenced-transaction.ts";
import { closeLockSession, queryWithDeadline } from "./lock-session.ts";

const HOLDS_LOCK = `SELECT pg_backend_pid() AS pid, EXISTS (
    SELECT 1 FROM pg_locks
     WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 2
       AND pid = pg_backend_pid() AND granted) AS held`;

/**
 * Leadership of one shard: the session advisory lock `(namespace, shard)` held on a dedicated
 * session, plus the fencing token and epoch written to the shard row at acquisition.
 *
 * Validity is local and conservative: the lease counts from the moment the last good heartbeat was
 * *sent*, which is no later than the moment the server starts its `idle_session_timeout` clock, so
 * this process stops trusting the lease no later than the server ends the session.
 */
export class ShardLease implements Fence {
  readonly shard: number;
  readonly epoch: number;
  readonly token: string;
  readonly #client: pg.Client;
  readonly #namespace: number;
  readonly #pid: number;
  readonly #leaseMs: number;
  readonly #tables: TableNames;
  #lastGoodHeartbeatAt: number;
  #lost: LeadershipLossReason | undefined;

  private constructor(args: {
    client: pg.Client;
    tables: TableNames;
    namespace: number;
    shard: number;
    epoch: number;
    token: string;
    pid: number;
    leaseMs: number;
    since: number;
  }) {
    this.#client = args.client;
    this.#tables = args.tables;
    this.#namespace = args.namespace;
    this.shard = args.shard;
    this.epoch = args.epoch;
    this.token = args.token;
    this.#pid = args.pid;
    this.#leaseMs = args.leaseMs;
    this.#lastGoodHeartbeatAt = args.since;
  }

  /**
   * Tries the shard lock once. On success writes a new random token and epoch + 1 to the shard row
   * (waiting for any fenced transaction of the previous leader to end) and checks that the lock is
   * held by this very backend: if not, a transaction-mode pooler is in between ({@link SessionPoolerError}).
   */
  static async tryAcquire(args: {
    client: pg.Client;
    tables: TableNames;
    namespace: number;
    shard: number;
    owner: string;
    leaseMs: number;
    /** The relay's shard count: re-checked against `relay_config` after every lock acquisition. */
    shardCount: number;
  }): Promise<ShardLease | undefined> {
    const { client, tables, namespace, shard, leaseMs } = args;
    const since = Date.now();
    const got = await queryWithDeadline<{ ok: boolean; pid: number }>(
      client,
      "SELECT pg_try_advisory_lock($1::integer, $2::integer) AS ok, pg_backend_pid() AS pid",
      [namespace, shard],
      leaseMs,
    );
    if (got.rows[0]?.ok !== true) return undefined;
    const pid = got.rows[0].pid;
    const check = await queryWithDeadline<{ pid: number; held: boolean }>(
      client,
      HOLDS_LOCK,
      [namespace, shard],
      leaseMs,
    );
    if (check.rows[0]?.pid !== pid || check.rows[0]?.held !== true) {
      throw new SessionPoolerError({
        message:
          "the lock connection does not keep one PostgreSQL session (a pooler in transaction mode, such as " +
          "PgBouncer pool_mode=transaction, sits in between): connect the relay directly or through a session-mode pool",
      });
    }
    // FOR SHARE waits for a concurrent changeShardCount to commit, so a relay started with the old
    // count never leads a shard under the new one.
    const config = await queryWithDeadline<{ shard_count: number }>(
      client,
      `SELECT shard_count FROM ${tables.relayConfig} FOR SHARE`,
      [],
      leaseMs * 3,
    );
    const recorded = config.rows[0]?.shard_count;
    if (recorded !== args.shardCount) {
      await queryWithDeadline(
        client,
        "SELECT pg_advisory_unlock($1::integer, $2::integer)",
        [namespace, shard],
        leaseMs,
      );
      throw new ShardCountMismatchError({
        recorded: recorded ?? 0,
        configured: args.shardCount,
        message: `shard ${shard}: the database now records ${recorded} shards, this relay runs with ${args.shardCount}; restart it with the recorded count`,
      });
    }
    const token = randomUUID();
    // Waits for a previous leader's FOR SHARE transaction; that one is ended by the server within a
    // lease (idle_in_transaction_session_timeout) if its owner went silent.
    const row = await queryWithDeadline<{ epoch: string }>(
      client,
      `INSERT INTO ${tables.relayShards} AS s (shard, token, epoch, owner, acquired_at, heartbeat_at)
       VALUES ($1, $2, 1, $3, now(), now())
       ON CONFLICT (shard) DO UPDATE
         SET token = EXCLUDED.token, epoch = s.epoch + 1, owner = EXCLUDED.owner, acquired_at = now(), heartbeat_at = now()
       RETURNING epoch::text AS epoch`,
      [shard, token, args.owner],
      leaseMs * 3,
    );
    return new ShardLease({
      client,
      tables,
      namespace,
      shard,
      epoch: Number(row.rows[0]!.epoch),
      token,
      pid,
      leaseMs,
      since,
    });
  }

  /** When the last good heartbeat was sent (epoch ms). */
  get lastGoodHeartbeatAt(): number {
    return this.#lastGoodHeartbeatAt;
  }

  /** Why the lease was lost, if it was. */
  get lostReason(): LeadershipLossReason | undefined {
    return this.#lost;
  }

  /** Throws {@link LeadershipLostError} unless the lease is held and fresh: call right before every send. */
  assertValid(now = Date.now()): void {
    if (this.#lost === undefined && now - this.#lastGoodHeartbeatAt >= this.#leaseMs) this.#lost = "lease-expired";
    if (this.#lost !== undefined) throw this.#lostError(this.#lost);
  }

  /**
   * One heartbeat on the lock session: the same backend still holds the lock, and the shard row
   * still carries this lease's token. Throws {@link LeadershipLostError} otherwise, or if the server
   * does not answer before the lease would run out.
   */
  async heartbeat(): Promise<void> {
    this.assertValid();
    const sentAt = Date.now();
    const budget = Math.max(100, this.#lastGoodHeartbeatAt + this.#leaseMs - sentAt);
    let row: { pid: number; held: boolean; token_ok: boolean } | undefined;
    try {
      const r = await queryWithDeadline<{ pid: number; held: boolean; token_ok: boolean }>(
        this.#client,
        `WITH beat AS (
           UPDATE ${this.#tables.relayShards} SET heartbeat_at = now() WHERE shard = $2 AND token = $3 RETURNING 1)
         SELECT h.pid, h.held, EXISTS (SELECT 1 FROM beat) AS token_ok FROM (${HOLDS_LOCK}) h`,
        [this.#namespace, this.shard, this.token],
        budget,
      );
      row = r.rows[0];
    } catch (error) {
      this.#lost ??= "heartbeat-failed";
      throw this.#lostError(this.#lost, error);
    }
    if (row === undefined || row.pid !== this.#pid || !row.held) {
      this.#lost ??= "lock-lost";
      throw this.#lostError(this.#lost);
    }
    if (!row.token_ok) {
      this.#lost ??= "fenced";
      throw this.#lostError(this.#lost);
    }
    this.#lastGoodHeartbeatAt = sentAt;
  }

  /** Marks the lease lost (for example when a fenced transaction found another token). */
  markLost(reason: LeadershipLossReason): void {
    this.#lost ??= reason;
  }

  /** Releases the lock if the session still works, then ends the session. */
  async release(): Promise<void> {
    this.#lost ??= "stopped";
    try {
      await queryWithDeadline(
        this.#client,
        "SELECT pg_advisory_unlock($1::integer, $2::integer)",
        [this.#namespace, this.shard],
        2000,
      );
    } catch {
      // The session is gone: the server already released the lock with it.
    }
    await closeLockSession(this.#client, 2000);
  }

  #lostError(reason: LeadershipLossReason, cause?: unknown): LeadershipLostError {
    const detail = cause instanceof Error ? `: ${cause.message}` : "";
    return new LeadershipLostError({
      shard: this.shard,
      epoch: this.epoch,
      reason,
      message: `shard ${this.shard} (epoch ${this.epoch}): leadership lost (${reason})${detail}`,
    });
  }
}
