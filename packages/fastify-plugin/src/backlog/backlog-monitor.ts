import type { TableNames } from "@eventlane/core";
import type { Kysely } from "kysely";
import { SharedAttempt, withTimeout } from "../internal/bounded.ts";
import { type SafeFailure, safeFailure } from "../internal/error-code.ts";
import { type BacklogSnapshot, queryBacklog } from "./backlog-query.ts";

/** The outcome of reading the backlog: figures, or why there are none. */
export type BacklogReading =
  | { readonly ok: true; readonly snapshot: BacklogSnapshot }
  | ({ readonly ok: false; readonly observedAt: Date } & SafeFailure);

export interface BacklogMonitorOptions {
  readonly cacheTtlMs: number;
  readonly timeoutMs: number;
  readonly leaderStaleAfterMs: number;
}

/**
 * Serves cluster-wide backlog figures from a short cache. Many replicas scraping every few seconds
 * would otherwise each count the outbox on every scrape: with the cache, each replica runs the
 * statement at most once per `cacheTtlMs`, one at a time, bounded by `timeoutMs`. Failures are cached
 * for the same time, so an outage does not turn every scrape into another connection attempt.
 */
export class BacklogMonitor {
  readonly #options: BacklogMonitorOptions;
  readonly #attempt: SharedAttempt<BacklogSnapshot>;
  #cached: { readonly reading: BacklogReading; readonly at: number } | undefined;
  #closed = false;

  constructor(db: Kysely<unknown>, names: TableNames, options: BacklogMonitorOptions) {
    this.#options = options;
    this.#attempt = new SharedAttempt(
      "backlog query",
      () => queryBacklog(db, names, options),
      // An attempt older than its timeout is abandoned, not joined (see SharedAttempt).
      { maxAgeMs: options.timeoutMs },
    );
  }

  /** The cached reading when fresh, else a new one (shared with concurrent callers). */
  async read(): Promise<BacklogReading> {
    if (this.#closed) return { ok: false, reason: "closed", observedAt: new Date() };
    const cached = this.#cached;
    if (cached !== undefined && performance.now() - cached.at < this.#options.cacheTtlMs) return cached.reading;
    let reading: BacklogReading;
    try {
      const snapshot = await withTimeout(this.#attempt.run(), this.#options.timeoutMs, "backlog query");
      reading = { ok: true, snapshot };
    } catch (error) {
      reading = { ok: false, observedAt: new Date(), ...safeFailure(error) };
    }
    if (!this.#closed) this.#cached = { reading, at: performance.now() };
    return reading;
  }

  /** Stops serving readings; a query still in flight is left to settle on its own. */
  close(): void {
    this.#closed = true;
    this.#cached = undefined;
  }
}
