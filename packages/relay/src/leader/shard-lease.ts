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
import { ProducerSendError, type SendDeadline } from "../producer/producer-port.ts";
import { type ClockReading, type LeaseClocks, LeaseTimer, readClocks, systemClocks } from "./lease-clock.ts";
import { closeLockSession, queryWithDeadline } from "./lock-session.ts";

/**
 * The send margin, as a fraction of the lease: no produce request of a batch is written later than
 * the lease deadline minus `leaseMs * SEND_MARGIN_FRACTION`, and a send still unsettled at the
 * deadline is abandoned. A successor can lead the shard no sooner than the deadline (the server ends
 * the silent lock session one lease after its last heartbeat), so the old leader's last request
 * leaves at least this margin before the successor's first: one that reaches the broker within the
 * margin lands before it. 2.5 s with the default lease of 10 s, 750 ms with a 3 s lease.
 *
 * With the heartbeat at most a third of the lease, a healthy leader always has
 * `lease - heartbeat - margin` (at least 5/12 of the lease) left to send in. A constant rather than an
 * option until the relay's option kit lands.
 */
export const SEND_MARGIN_FRACTION = 0.25;

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
 * this process stops trusting the lease no later than the server ends the session. It is timed on the
 * wall clock and the monotonic clock at once and is over when either says so ({@link LeaseTimer}).
 */
export class ShardLease implements Fence {
  readonly shard: number;
  readonly epoch: number;
  readonly token: string;
  readonly #client: pg.Client;
  readonly #namespace: number;
  readonly #pid: number;
  readonly #tables: TableNames;
  readonly #timer: LeaseTimer;
  readonly #sendMarginMs: number;
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
    clocks: LeaseClocks;
    since: ClockReading;
  }) {
    this.#client = args.client;
    this.#tables = args.tables;
    this.#namespace = args.namespace;
    this.shard = args.shard;
    this.epoch = args.epoch;
    this.token = args.token;
    this.#pid = args.pid;
    this.#timer = new LeaseTimer(args.clocks, args.leaseMs, args.since);
    this.#sendMarginMs = Math.round(args.leaseMs * SEND_MARGIN_FRACTION);
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
    /** The clocks the lease is timed with (tests inject their own). */
    clocks?: LeaseClocks;
  }): Promise<ShardLease | undefined> {
    const { client, tables, namespace, shard, leaseMs } = args;
    const clocks = args.clocks ?? systemClocks;
    const since = readClocks(clocks);
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
      clocks,
      since,
    });
  }

  /** When the last good heartbeat was sent (epoch ms, wall clock). */
  get lastGoodHeartbeatAt(): number {
    return this.#timer.from.wall;
  }

  /** Why the lease was lost, if it was. */
  get lostReason(): LeadershipLossReason | undefined {
    return this.#lost;
  }

  /** Throws {@link LeadershipLostError} unless the lease is held and has time left by both clocks. */
  assertValid(): void {
    if (this.#lost === undefined && this.#timer.remainingMs() <= 0) this.#lost = "lease-expired";
    if (this.#lost !== undefined) throw this.#lostError(this.#lost);
  }

  /**
   * Throws unless a batch may start a request now: {@link LeadershipLostError} when the lease is
   * over, a `timeout` {@link ProducerSendError} (the shard backs off) while the lease is held but
   * ends within the send margin. Call right before every send and commit.
   */
  assertMaySend(): void {
    if (this.sendDeadline.writableMs() <= 0) throw this.sendDeadline.closedError();
  }

  /**
   * This lease as the deadline of a send (DESIGN invariant 5): produce requests may be written until
   * the lease deadline minus the send margin ({@link SEND_MARGIN_FRACTION}), by both clocks; a send
   * still unsettled at the deadline is abandoned. Every heartbeat moves both instants on.
   */
  readonly sendDeadline: SendDeadline = {
    writableMs: () => (this.#lost === undefined ? this.#timer.remainingMs() - this.#sendMarginMs : 0),
    settleMs: () => (this.#lost === undefined ? this.#timer.remainingMs() : 0),
    closedError: () => {
      const remaining = this.#timer.remainingMs();
      if (this.#lost === undefined && remaining <= 0) this.#lost = "lease-expired";
      if (this.#lost !== undefined) return this.#lostError(this.#lost);
      return new ProducerSendError({
        reason: "timeout",
        message:
          `shard ${this.shard} (epoch ${this.epoch}): the lease ends in ${Math.round(remaining)} ms, within the ` +
          `send margin of ${this.#sendMarginMs} ms (a late heartbeat): no request is started`,
      });
    },
  };

  /**
   * One heartbeat on the lock session: the same backend still holds the lock, and the shard row
   * still carries this lease's token. Throws {@link LeadershipLostError} otherwise, or if the server
   * does not answer before the lease would run out.
   */
  async heartbeat(): Promise<void> {
    this.assertValid();
    const sentAt = this.#timer.now();
    const budget = Math.max(100, this.#timer.remainingMs(sentAt));
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
    this.#timer.renew(sentAt);
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
