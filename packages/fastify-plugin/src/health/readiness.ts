import { type Kysely, sql } from "kysely";
import { SharedAttempt, withTimeout } from "../internal/bounded.ts";
import { type FailureReason, safeFailure } from "../internal/error-code.ts";
import type { EventlaneRelayHandle } from "../relay-handle.ts";

/** The checks readiness runs: `database` always, `relay` and `producer` where a relay runs here. */
export type ReadinessCheckName = "database" | "relay" | "producer";

export interface ReadinessCheck {
  readonly status: "ok" | "fail";
  /** How long the check took, in milliseconds. */
  readonly durationMs: number;
  /** Why it failed: the database timed out or errored, the relay is stopped, the producer disconnected. */
  readonly reason?: FailureReason | "stopped" | "disconnected";
  /** A SQLSTATE or Node error code, when the failure carries one. */
  readonly code?: string;
  /** The bound the check ran under, in milliseconds (database only). */
  readonly timeoutMs?: number;
}

/** The readiness answer; `failed` names every failed check. */
export interface ReadinessReport {
  readonly status: "ready" | "not_ready";
  readonly failed: readonly ReadinessCheckName[];
  readonly checks: Readonly<Partial<Record<ReadinessCheckName, ReadinessCheck>>>;
}

/**
 * Readiness of this instance only: the database answers `SELECT 1` within `timeoutMs` and, when a
 * relay runs in this process, it runs and its producer is connected. Concurrent probes share one
 * ping; a ping that outlives the timeout is abandoned (see SharedAttempt), so a blackholed
 * connection turns readiness to 503 after `timeoutMs` and a healed one turns it back.
 */
export class ReadinessChecker {
  readonly #ping: SharedAttempt<void>;
  readonly #timeoutMs: number;
  readonly #relay: EventlaneRelayHandle | undefined;

  constructor(db: Kysely<unknown>, relay: EventlaneRelayHandle | undefined, timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
    this.#relay = relay;
    this.#ping = new SharedAttempt(
      "database",
      async () => {
        await sql`SELECT 1`.execute(db);
      },
      { maxAgeMs: timeoutMs },
    );
  }

  async check(): Promise<ReadinessReport> {
    const checks: Partial<Record<ReadinessCheckName, ReadinessCheck>> = {};
    const started = performance.now();
    try {
      await withTimeout(this.#ping.run(), this.#timeoutMs, "database");
      checks.database = { status: "ok", durationMs: elapsed(started), timeoutMs: this.#timeoutMs };
    } catch (error) {
      checks.database = {
        status: "fail",
        durationMs: elapsed(started),
        timeoutMs: this.#timeoutMs,
        ...safeFailure(error),
      };
    }
    if (this.#relay !== undefined) {
      const relayStarted = performance.now();
      let status: ReturnType<EventlaneRelayHandle["status"]> | undefined;
      try {
        status = this.#relay.status();
      } catch {
        status = undefined;
      }
      const durationMs = elapsed(relayStarted);
      checks.relay =
        status?.running === true ? { status: "ok", durationMs } : { status: "fail", durationMs, reason: "stopped" };
      checks.producer =
        status?.producerConnected === true
          ? { status: "ok", durationMs }
          : { status: "fail", durationMs, reason: "disconnected" };
    }
    const failed = (Object.keys(checks) as ReadinessCheckName[]).filter((name) => checks[name]?.status === "fail");
    return { status: failed.length === 0 ? "ready" : "not_ready", failed, checks };
  }
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}
