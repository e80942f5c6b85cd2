import type { TableNames } from "@eventlane/core";
import type pg from "pg";
import { DeadLetterNotFoundError } from "../errors.ts";

/** A dead-lettered outbox row; its (topic, key) is parked until it is requeued or skipped. */
export interface DeadLetter {
  readonly outboxId: string;
  readonly eventId: string;
  readonly topic: string;
  readonly key: string;
  readonly eventType: string;
  readonly attempts: number;
  readonly lastError: string | null;
  /**
   * The class of the failure: the text of `lastError` before its first ":" (`oversize`,
   * `invalid-record`, `record`, `unrouted-topic`), as the relay writes it.
   */
  readonly reason: string | null;
  readonly createdAt: Date;
  /** When it was last dead-lettered (from `dead_letter_log`); null for a row dead-lettered by hand. */
  readonly deadLetteredAt: Date | null;
}

export interface ListDeadLettersOptions {
  readonly topic?: string;
  readonly key?: string;
  /** Only dead letters of this {@link DeadLetter.reason} class. */
  readonly reason?: string;
  /** Only dead letters dead-lettered before this time (rows dead-lettered by hand: created before it). */
  readonly deadLetteredBefore?: Date;
  /** Only outbox ids above this one (to page through in id order). */
  readonly afterOutboxId?: string;
  /** @default 100 */
  readonly limit?: number;
}

/** Who did it and why, recorded in the dead letter log. */
export interface DeadLetterAction {
  /** @default the relay's instanceId (the `actor` given to {@link outboxDeadLetters}) */
  readonly actor?: string;
  readonly reason?: string;
}

/** One entry of `dead_letter_log`. */
export interface DeadLetterLogEntry {
  readonly action: "dead_lettered" | "requeued" | "skipped";
  readonly reason: string | null;
  readonly actor: string | null;
  readonly at: Date;
}

/** Everything known about one outbox row that is or was dead-lettered, for an operator. */
export interface DeadLetterDetail extends DeadLetter {
  /** `dead_lettered` until it is requeued (`pending`, then `published`) or skipped. */
  readonly status: string;
  readonly schemaVersion: number;
  readonly aggregateType: string | null;
  readonly aggregateId: string | null;
  readonly aggregateVersion: number | null;
  readonly keySequence: string | null;
  /** The writer's headers (the `headers` column), without the ones the relay derives from columns. */
  readonly headers: Readonly<Record<string, unknown>>;
  /** The JSON payload as text (an event-sourced row's from its events row); null when there is none. */
  readonly payload: string | null;
  /** This row parks its (topic, key). */
  readonly parksKey: boolean;
  /** Pending rows of the same (topic, key) with higher ids: what waits behind it. */
  readonly waitingRows: number;
  /** The row's history in `dead_letter_log`, oldest first. */
  readonly log: readonly DeadLetterLogEntry[];
}

/** What a bulk action did to one dead letter; `unchanged`: it was no longer dead-lettered. */
export interface DeadLetterActionOutcome {
  readonly outboxId: string;
  readonly topic: string;
  readonly key: string;
  readonly outcome: "requeued" | "skipped" | "unchanged";
}

/** A bulk action takes at most this many dead letters per call (repeat it for more). */
const BULK_LIMIT = 10_000;

interface DeadLetterDbRow {
  id: string;
  event_id: string;
  topic: string;
  key: string;
  event_type: string;
  attempts: number;
  last_error: string | null;
  created_at: Date;
  dead_lettered_at: Date | null;
}

const toDeadLetter = (x: DeadLetterDbRow): DeadLetter => ({
  outboxId: x.id,
  eventId: x.event_id,
  topic: x.topic,
  key: x.key,
  eventType: x.event_type,
  attempts: x.attempts,
  lastError: x.last_error,
  reason: x.last_error === null ? null : x.last_error.split(":", 1)[0]!.trim(),
  createdAt: x.created_at,
  deadLetteredAt: x.dead_lettered_at,
});

function checkOutboxId(outboxId: string): void {
  if (typeof outboxId !== "string" || !/^\d{1,19}$/.test(outboxId)) {
    throw new DeadLetterNotFoundError({ outboxId, message: `outbox id ${JSON.stringify(outboxId)} is not a number` });
  }
}

/**
 * Listing and resolving dead letters. Each action is one transaction and is recorded in
 * `dead_letter_log`; with a notify channel, the transaction also wakes the relays (one NOTIFY).
 */
export class DeadLetters {
  readonly #pool: pg.Pool;
  readonly #n: TableNames;
  readonly #defaultActor: string;
  readonly #notifyChannel: string | undefined;

  constructor(pool: pg.Pool, tables: TableNames, defaultActor: string, notifyChannel?: string) {
    this.#pool = pool;
    this.#n = tables;
    this.#defaultActor = defaultActor;
    this.#notifyChannel = notifyChannel;
  }

  /** Dead letters in id order. */
  async list(options: ListDeadLettersOptions = {}): Promise<DeadLetter[]> {
    // The reason class is the text before the first ":" of last_error, as the relay writes it.
    // The dead-lettering time is the row's last `dead_lettered` log entry (the partial index on
    // dead-lettered rows keeps this a small scan).
    const r = await this.#pool.query<DeadLetterDbRow>(
      `SELECT o.id::text AS id, o.event_id::text AS event_id, o.topic, o.key, o.event_type, o.attempts, o.last_error,
              o.created_at, l.at AS dead_lettered_at
         FROM ${this.#n.outbox} o
         LEFT JOIN LATERAL (
           SELECT max(at) AS at FROM ${this.#n.deadLetterLog} d WHERE d.outbox_id = o.id AND d.action = 'dead_lettered'
         ) l ON true
        WHERE o.status = 'dead_lettered'
          AND ($1::text IS NULL OR o.topic = $1)
          AND ($2::text IS NULL OR o.key = $2)
          AND ($3::text IS NULL OR trim(split_part(o.last_error, ':', 1)) = $3)
          AND ($4::timestamptz IS NULL OR COALESCE(l.at, o.created_at) < $4)
          AND ($5::bigint IS NULL OR o.id > $5)
        ORDER BY o.id LIMIT $6`,
      [
        options.topic ?? null,
        options.key ?? null,
        options.reason ?? null,
        options.deadLetteredBefore ?? null,
        options.afterOutboxId ?? null,
        options.limit ?? 100,
      ],
    );
    return r.rows.map(toDeadLetter);
  }

  /**
   * One outbox row that is or was dead-lettered, with its payload, headers, whether it parks its key,
   * what waits behind it and its log. Throws {@link DeadLetterNotFoundError} for any other row.
   */
  async get(outboxId: string): Promise<DeadLetterDetail> {
    checkOutboxId(outboxId);
    const r = await this.#pool.query<
      DeadLetterDbRow & {
        status: string;
        schema_version: number;
        aggregate_type: string | null;
        aggregate_id: string | null;
        aggregate_version: number | null;
        key_sequence: string | null;
        headers: Record<string, unknown> | null;
        payload: string | null;
        parks_key: boolean;
        waiting_rows: number;
      }
    >(
      `SELECT o.id::text AS id, o.event_id::text AS event_id, o.topic, o.key, o.event_type, o.attempts, o.last_error,
              o.created_at, o.status, o.schema_version, o.aggregate_type, o.aggregate_id, o.aggregate_version,
              o.key_sequence::text AS key_sequence, o.headers,
              COALESCE(o.payload::text, (SELECT e.payload::text FROM ${this.#n.events} e WHERE e.event_id = o.event_id)) AS payload,
              (SELECT max(at) FROM ${this.#n.deadLetterLog} d WHERE d.outbox_id = o.id AND d.action = 'dead_lettered') AS dead_lettered_at,
              EXISTS (SELECT 1 FROM ${this.#n.parkedKeys} p WHERE p.topic = o.topic AND p.key = o.key AND p.outbox_id = o.id) AS parks_key,
              (SELECT count(*) FROM ${this.#n.outbox} w
                WHERE w.status = 'pending' AND w.topic = o.topic AND w.key = o.key AND w.id > o.id)::integer AS waiting_rows
         FROM ${this.#n.outbox} o
        WHERE o.id = $1
          AND (o.status = 'dead_lettered' OR EXISTS (SELECT 1 FROM ${this.#n.deadLetterLog} d WHERE d.outbox_id = o.id))`,
      [outboxId],
    );
    const row = r.rows[0];
    if (row === undefined) {
      throw new DeadLetterNotFoundError({ outboxId, message: `outbox row ${outboxId} is not a dead letter` });
    }
    const log = await this.#pool.query<DeadLetterLogEntry>(
      `SELECT action, reason, actor, at FROM ${this.#n.deadLetterLog} WHERE outbox_id = $1 ORDER BY id`,
      [outboxId],
    );
    return {
      ...toDeadLetter(row),
      status: row.status,
      schemaVersion: row.schema_version,
      aggregateType: row.aggregate_type,
      aggregateId: row.aggregate_id,
      aggregateVersion: row.aggregate_version,
      keySequence: row.key_sequence,
      headers: row.headers ?? {},
      payload: row.payload,
      parksKey: row.parks_key,
      waitingRows: row.waiting_rows,
      log: log.rows,
    };
  }

  /**
   * Puts a dead letter back to pending with its attempts reset and unparks its key. Being the lowest
   * pending id of its key, it is published before the later events of that key that waited.
   */
  requeue(outboxId: string, action: DeadLetterAction = {}): Promise<{ topic: string; key: string }> {
    return this.#resolve(outboxId, "requeued", `status = 'pending', attempts = 0, last_error = NULL`, action);
  }

  /** Gives up on a dead letter (status `skipped`) and unparks its key: later events of the key flow. */
  skip(outboxId: string, action: DeadLetterAction = {}): Promise<{ topic: string; key: string }> {
    return this.#resolve(outboxId, "skipped", `status = 'skipped'`, action);
  }

  /**
   * Requeues every dead letter the filter takes (at most 10000 per call), in id order: a key's dead
   * letters go back oldest first, so they are published in their original order. Each is its own
   * transaction; one resolved meanwhile by someone else comes back `unchanged`.
   */
  requeueWhere(filter: Omit<ListDeadLettersOptions, "limit">, action: DeadLetterAction = {}) {
    return this.#resolveWhere(filter, (id) => this.requeue(id, action), "requeued");
  }

  /** Skips every dead letter the filter takes (at most 10000 per call), in id order. */
  skipWhere(filter: Omit<ListDeadLettersOptions, "limit">, action: DeadLetterAction = {}) {
    return this.#resolveWhere(filter, (id) => this.skip(id, action), "skipped");
  }

  async #resolveWhere(
    filter: Omit<ListDeadLettersOptions, "limit">,
    one: (outboxId: string) => Promise<{ topic: string; key: string }>,
    outcome: "requeued" | "skipped",
  ): Promise<DeadLetterActionOutcome[]> {
    const taken = await this.list({ ...filter, limit: BULK_LIMIT });
    const out: DeadLetterActionOutcome[] = [];
    for (const d of taken) {
      try {
        await one(d.outboxId);
        out.push({ outboxId: d.outboxId, topic: d.topic, key: d.key, outcome });
      } catch (error) {
        if (!(error instanceof DeadLetterNotFoundError)) throw error;
        out.push({ outboxId: d.outboxId, topic: d.topic, key: d.key, outcome: "unchanged" });
      }
    }
    return out;
  }

  async #resolve(
    outboxId: string,
    action: "requeued" | "skipped",
    set: string,
    who: DeadLetterAction,
  ): Promise<{ topic: string; key: string }> {
    checkOutboxId(outboxId);
    const client = await this.#pool.connect();
    try {
      await client.query("BEGIN");
      const r = await client.query<{ topic: string; key: string }>(
        `UPDATE ${this.#n.outbox} SET ${set} WHERE id = $1 AND status = 'dead_lettered' RETURNING topic, key`,
        [outboxId],
      );
      const row = r.rows[0];
      if (row === undefined) {
        await client.query("ROLLBACK");
        throw new DeadLetterNotFoundError({ outboxId, message: `outbox row ${outboxId} is not dead-lettered` });
      }
      await client.query(`DELETE FROM ${this.#n.parkedKeys} WHERE topic = $1 AND key = $2 AND outbox_id = $3`, [
        row.topic,
        row.key,
        outboxId,
      ]);
      await client.query(
        `INSERT INTO ${this.#n.deadLetterLog} (outbox_id, topic, key, action, reason, actor) VALUES ($1, $2, $3, $4, $5, $6)`,
        [outboxId, row.topic, row.key, action, who.reason ?? null, who.actor ?? this.#defaultActor],
      );
      // Delivered at commit: relays LISTENing on the outbox channel read the unparked key at once.
      if (this.#notifyChannel !== undefined) await client.query("SELECT pg_notify($1, '')", [this.#notifyChannel]);
      await client.query("COMMIT");
      return row;
    } catch (error) {
      if (!(error instanceof DeadLetterNotFoundError)) await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }
}
