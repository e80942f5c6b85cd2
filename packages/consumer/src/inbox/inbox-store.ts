import { type Kysely, sql, type Transaction } from "kysely";
import type { DeadLetterReason } from "../message/dead-letter-reason.ts";
import type { MessageEnvelope, PositionKind } from "../message/decode-message.ts";
import type { ConsumerTableNames } from "../schema/names.ts";

// biome-ignore lint/suspicious/noExplicitAny: the inbox runs only its own SQL in the caller's database
type AnyTrx = Transaction<any>;

export interface DeadLetterInput {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly envelope: MessageEnvelope;
  readonly value: Buffer | null;
  readonly reason: DeadLetterReason;
  readonly detail: string;
}

/** Totals kept in the consumer's database, durable across restarts. */
export interface InboxTotals {
  readonly keys: number;
  readonly duplicates: number;
  readonly gaps: number;
  readonly deadLetters: number;
}

/** A dead-lettered record as stored. */
export interface DeadLetterRow {
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: string | null;
  readonly value: string | null;
  readonly headers: Record<string, string>;
  readonly eventType: string | null;
  readonly eventId: string | null;
  readonly reason: DeadLetterReason;
  readonly detail: string;
  readonly createdAt: Date;
}

/** The consumer's SQL, one statement per step of the hot path. */
export function inboxStore(names: ConsumerTableNames, consumer: string) {
  const watermarks = sql.raw(names.watermarks);
  const inbox = sql.raw(names.inbox);
  const deadLetters = sql.raw(names.deadLetters);

  return {
    /**
     * Locks the key's watermark row (creating it at 0) and returns its position. The no-op update
     * takes the row lock, so two deliveries of one key never both pass the check.
     */
    async lockWatermark(trx: AnyTrx, topic: string, key: string, kind: PositionKind): Promise<number> {
      const r = await sql<{ position: string }>`
        INSERT INTO ${watermarks} AS w (consumer, topic, key, kind, position) VALUES (${consumer}, ${topic}, ${key}, ${kind}, 0)
        ON CONFLICT (consumer, topic, key, kind) DO UPDATE SET position = w.position
        RETURNING position`.execute(trx);
      return Number(r.rows[0]?.position ?? 0);
    },

    async advanceWatermark(
      trx: AnyTrx,
      topic: string,
      key: string,
      kind: PositionKind,
      position: number,
      gap: boolean,
    ): Promise<void> {
      await sql`
        UPDATE ${watermarks} SET position = ${position}, gaps = gaps + ${gap ? 1 : 0}, updated_at = now()
        WHERE consumer = ${consumer} AND topic = ${topic} AND key = ${key} AND kind = ${kind}`.execute(trx);
    },

    async countDuplicate(trx: AnyTrx, topic: string, key: string, kind: PositionKind): Promise<void> {
      await sql`
        UPDATE ${watermarks} SET duplicates = duplicates + 1, updated_at = now()
        WHERE consumer = ${consumer} AND topic = ${topic} AND key = ${key} AND kind = ${kind}`.execute(trx);
    },

    async countRefusedGap(trx: AnyTrx, topic: string, key: string, kind: PositionKind): Promise<void> {
      await sql`
        UPDATE ${watermarks} SET gaps = gaps + 1, updated_at = now()
        WHERE consumer = ${consumer} AND topic = ${topic} AND key = ${key} AND kind = ${kind}`.execute(trx);
    },

    /** Records an event id; false when it was already there (a duplicate). */
    async claimEventId(trx: AnyTrx, topic: string, eventId: string): Promise<boolean> {
      const r = await sql`
        INSERT INTO ${inbox} (consumer, event_id, topic) VALUES (${consumer}, ${eventId}, ${topic})
        ON CONFLICT (consumer, event_id) DO NOTHING RETURNING 1`.execute(trx);
      return r.rows.length === 1;
    },

    /** Inserts a dead letter once per record (a redelivered record is not stored twice). */
    async deadLetter(trx: AnyTrx, input: DeadLetterInput): Promise<void> {
      const e = input.envelope;
      await sql`
        INSERT INTO ${deadLetters} (consumer, topic, partition, "offset", key, value, headers, event_type, event_id, reason, detail)
        VALUES (${consumer}, ${input.topic}, ${input.partition}, ${input.offset}, ${e.key}, ${input.value?.toString("utf8") ?? null},
                ${JSON.stringify(e.headers)}::jsonb, ${e.eventType}, ${e.eventId}, ${input.reason}, ${input.detail})
        ON CONFLICT (consumer, topic, partition, "offset") DO NOTHING`.execute(trx);
    },

    // biome-ignore lint/suspicious/noExplicitAny: see AnyTrx
    async totals(db: Kysely<any>): Promise<InboxTotals> {
      const r = await sql<{ keys: string; duplicates: string; gaps: string; dead: string }>`
        SELECT (SELECT count(*) FROM ${watermarks} WHERE consumer = ${consumer}) AS keys,
               (SELECT coalesce(sum(duplicates), 0) FROM ${watermarks} WHERE consumer = ${consumer}) AS duplicates,
               (SELECT coalesce(sum(gaps), 0) FROM ${watermarks} WHERE consumer = ${consumer}) AS gaps,
               (SELECT count(*) FROM ${deadLetters} WHERE consumer = ${consumer}) AS dead`.execute(db);
      const row = r.rows[0];
      return {
        keys: Number(row?.keys ?? 0),
        duplicates: Number(row?.duplicates ?? 0),
        gaps: Number(row?.gaps ?? 0),
        deadLetters: Number(row?.dead ?? 0),
      };
    },

    // biome-ignore lint/suspicious/noExplicitAny: see AnyTrx
    async deadLetters(db: Kysely<any>, limit: number): Promise<DeadLetterRow[]> {
      const r = await sql<{
        id: string;
        topic: string;
        partition: number;
        offset: string;
        key: string | null;
        value: string | null;
        headers: Record<string, string>;
        event_type: string | null;
        event_id: string | null;
        reason: DeadLetterReason;
        detail: string;
        created_at: Date;
      }>`
        SELECT id, topic, partition, "offset", key, value, headers, event_type, event_id, reason, detail, created_at
        FROM ${deadLetters} WHERE consumer = ${consumer} ORDER BY id LIMIT ${limit}`.execute(db);
      return r.rows.map((x) => ({
        id: String(x.id),
        topic: x.topic,
        partition: x.partition,
        offset: String(x.offset),
        key: x.key,
        value: x.value,
        headers: x.headers,
        eventType: x.event_type,
        eventId: x.event_id,
        reason: x.reason,
        detail: x.detail,
        createdAt: x.created_at,
      }));
    },
  };
}

export type InboxStore = ReturnType<typeof inboxStore>;
