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
  readonly createdAt: Date;
}

export interface ListDeadLettersOptions {
  readonly topic?: string;
  readonly key?: string;
  /** @default 100 */
  readonly limit?: number;
}

/** Who did it and why, recorded in the dead letter log. */
export interface DeadLetterAction {
  /** @default the relay's instanceId */
  readonly actor?: string;
  readonly reason?: string;
}

/** Listing and resolving dead letters. Each action is one transaction and is recorded in `dead_letter_log`. */
export class DeadLetters {
  readonly #pool: pg.Pool;
  readonly #n: TableNames;
  readonly #defaultActor: string;

  constructor(pool: pg.Pool, tables: TableNames, defaultActor: string) {
    this.#pool = pool;
    this.#n = tables;
    this.#defaultActor = defaultActor;
  }

  /** Dead letters in id order. */
  async list(options: ListDeadLettersOptions = {}): Promise<DeadLetter[]> {
    const r = await this.#pool.query<{
      id: string;
      event_id: string;
      topic: string;
      key: string;
      event_type: string;
      attempts: number;
      last_error: string | null;
      created_at: Date;
    }>(
      `SELECT id::text AS id, event_id::text AS event_id, topic, key, event_type, attempts, last_error, created_at
         FROM ${this.#n.outbox}
        WHERE status = 'dead_lettered' AND ($1::text IS NULL OR topic = $1) AND ($2::text IS NULL OR key = $2)
        ORDER BY id LIMIT $3`,
      [options.topic ?? null, options.key ?? null, options.limit ?? 100],
    );
    return r.rows.map((x) => ({
      outboxId: x.id,
      eventId: x.event_id,
      topic: x.topic,
      key: x.key,
      eventType: x.event_type,
      attempts: x.attempts,
      lastError: x.last_error,
      createdAt: x.created_at,
    }));
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

  async #resolve(
    outboxId: string,
    action: "requeued" | "skipped",
    set: string,
    who: DeadLetterAction,
  ): Promise<{ topic: string; key: string }> {
    if (!/^\d+$/.test(outboxId)) {
      throw new DeadLetterNotFoundError({ outboxId, message: `outbox id ${JSON.stringify(outboxId)} is not a number` });
    }
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
