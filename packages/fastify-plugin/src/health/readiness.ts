import { assertSchemaVersion, SchemaVersionError, type TableNames } from "@eventlane/core";
import type { RelayHandle, RelayStatusSnapshot } from "@eventlane/core/internal";
import { type Kysely, sql } from "kysely";
import { SharedAttempt, withTimeout } from "../internal/bounded.ts";
import { type FailureReason, safeFailure } from "../internal/error-code.ts";

/**
 * The checks readiness runs: `database` always, `schema` once the database has answered, `relay` and
 * `producer` where a relay runs here.
 */
export type ReadinessCheckName = "database" | "schema" | "relay" | "producer";

export interface ReadinessCheck {
  readonly status: "ok" | "fail";
  /** How long the check took, in milliseconds. */
  readonly durationMs: number;
  /**
   * Why it failed: the database timed out or errored, the schema is not at the version this code
   * needs, the relay is stopped, the producer disconnected.
   */
  readonly reason?: FailureReason | "version" | "stopped" | "disconnected";
  /** A SQLSTATE, a Node error code or (schema) `EVENTLANE_SCHEMA_VERSION`, when the failure carries one. */
  readonly code?: string;
  /** The bound the check ran under, in milliseconds (database only). */
  readonly timeoutMs?: number;
  /** Schema only: the `SchemaVersionError`'s message (what to run), which names no host and no secret. */
  readonly message?: string;
  /** Schema only: the version this code needs. */
  readonly expected?: number;
  /** Schema only: the version the database is at, null when Eventlane's tables are missing. */
  readonly actual?: number | null;
}

/** The readiness answer; `failed` names every failed check. */
export interface ReadinessReport {
  readonly status: "ready" | "not_ready";
  readonly failed: readonly ReadinessCheckName[];
  readonly checks: Readonly<Partial<Record<ReadinessCheckName, ReadinessCheck>>>;
}

/**
 * Readiness of this instance only: the database answers within `timeoutMs`, Eventlane's schema is at
 * the version this code needs (`SCHEMA_VERSION`) and, when a relay runs in this process, it runs and
 * its producer is connected. Until the schema has been found at that version, each probe reads the
 * version (`assertSchemaVersion`) instead of `SELECT 1`: on an unmigrated database every write would
 * fail, so the instance is not ready. Once it matched, probes only ping (a migration does not go
 * backwards under a running instance). Concurrent probes share one attempt; an attempt that outlives
 * the timeout is abandoned (see SharedAttempt), so a blackholed connection turns readiness to 503
 * after `timeoutMs` and a healed one turns it back.
 */
export class ReadinessChecker {
  readonly #attempt: SharedAttempt<void>;
  readonly #timeoutMs: number;
  readonly #relay: RelayHandle | undefined;
  #schemaMatched = false;

  constructor(db: Kysely<unknown>, names: TableNames, relay: RelayHandle | undefined, timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
    this.#relay = relay;
    this.#attempt = new SharedAttempt(
      "database",
      async () => {
        if (this.#schemaMatched) {
          await sql`SELECT 1`.execute(db);
          return;
        }
        await assertSchemaVersion(db, { schema: names.schema, tablePrefix: names.tablePrefix });
        this.#schemaMatched = true;
      },
      { maxAgeMs: timeoutMs },
    );
  }

  async check(): Promise<ReadinessReport> {
    const checks: Partial<Record<ReadinessCheckName, ReadinessCheck>> = {};
    const started = performance.now();
    const schemaKnown = this.#schemaMatched;
    try {
      await withTimeout(this.#attempt.run(), this.#timeoutMs, "database");
      const durationMs = elapsed(started);
      checks.database = { status: "ok", durationMs, timeoutMs: this.#timeoutMs };
      // Once matched, the version is not read again: the check then costs nothing.
      checks.schema = { status: "ok", durationMs: schemaKnown ? 0 : durationMs };
    } catch (error) {
      const durationMs = elapsed(started);
      if (error instanceof SchemaVersionError) {
        // The database answered: it is the schema that is not ready.
        checks.database = { status: "ok", durationMs, timeoutMs: this.#timeoutMs };
        checks.schema = {
          status: "fail",
          durationMs,
          reason: "version",
          code: error.code,
          message: error.message,
          expected: error.expected,
          actual: error.actual,
        };
      } else {
        checks.database = { status: "fail", durationMs, timeoutMs: this.#timeoutMs, ...safeFailure(error) };
      }
    }
    if (this.#relay !== undefined) {
      const relayStarted = performance.now();
      let status: RelayStatusSnapshot | undefined;
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
