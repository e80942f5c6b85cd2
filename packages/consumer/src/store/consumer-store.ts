import { type Kysely, sql, type Transaction } from "kysely";
import type { DeadLetterReason } from "../message/dead-letter-reason.ts";
import type { MessageEnvelope, PositionKind } from "../message/decode-message.ts";
import type { ConsumerTableNames } from "../schema/names.ts";
import { WatermarkRaceError } from "../errors.ts";

// biome-ignore lint/suspicious/noExplicitAny: the consumer runs only its own SQL in the caller's database
type AnyDb = Kysely<any>;
// biome-ignore lint/suspicious/noExplicitAny: see AnyDb
type AnyTrx = Transaction<any>;

/** A watermark row's identity: what one key's position is kept under. */
export interface WatermarkKey {
  readonly topic: string;
  readonly key: string;
  readonly kind: PositionKind;
}

/** The new state of one watermark at the end of a chunk. */
export interface WatermarkAdvance extends WatermarkKey {
  readonly position: number;
  readonly gaps: number;
  readonly duplicates: number;
}

export interface DeadLetterInput {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly envelope: MessageEnvelope;
  readonly value: Buffer | null;
  readonly reason: DeadLetterReason;
  readonly detail: string;
}

/** The lifecycle of a dead letter: replayed and skipped are final. */
export const DeadLetterStatuses = ["pending", "replay_requested", "replayed", "skipped"] as const;
export type DeadLetterStatus = (typeof DeadLetterStatuses)[number];

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
  readonly status: DeadLetterStatus;
  readonly requestedBy: string | null;
  readonly resolvedBy: string | null;
  readonly resolvedAt: Date | null;
  readonly createdAt: Date;
}

/** Which dead letters a bulk action or a listing takes. Every field narrows; none means all. */
export interface DeadLetterFilter {
  /** One dead letter by id. */
  readonly id?: string;
  readonly topic?: string;
  readonly key?: string;
  readonly reason?: DeadLetterReason;
  /** Default: the unresolved ones (`pending` and `replay_requested`) for actions, every status for listings. */
  readonly status?: DeadLetterStatus | readonly DeadLetterStatus[];
  /** Only dead letters created before this time. */
  readonly before?: Date;
  /** The most rows (default 100 for listings, 10000 for actions). */
  readonly limit?: number;
}

type DeadLetterDbRow = {
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
  status: DeadLetterStatus;
  requested_by: string | null;
  resolved_by: string | null;
  resolved_at: Date | null;
  created_at: Date;
};

const toDeadLetter = (x: DeadLetterDbRow): DeadLetterRow => ({
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
  status: x.status,
  requestedBy: x.requested_by,
  resolvedBy: x.resolved_by,
  resolvedAt: x.resolved_at,
  createdAt: x.created_at,
});

/** The in-memory identity of a watermark row. */
export const watermarkId = (topic: string, key: string, kind: string) => `${kind}\u0000${topic}\u0000${key}`;

/**
 * All of the consumer's SQL, one statement per step. The hot path is four statements per chunk
 * whatever its size: lock the chunk's watermarks, (claim event ids of records without a position),
 * the handlers' own writes, advance the watermarks, (dead letters).
 */
export function consumerStore(names: ConsumerTableNames, consumer: string) {
  const watermarks = sql.raw(names.watermarks);
  const inbox = sql.raw(names.inbox);
  const deadLetters = sql.raw(names.deadLetters);
  const actions = sql.raw(names.deadLetterActions);
  const deadLetterColumns = sql.raw(
    `id, topic, partition, "offset", key, value, headers, event_type, event_id, reason, detail, status,
     requested_by, resolved_by, resolved_at, created_at`,
  );

  const filterSql = (f: DeadLetterFilter, defaultStatus: readonly DeadLetterStatus[] | null) => {
    const statuses = f.status === undefined ? defaultStatus : typeof f.status === "string" ? [f.status] : f.status;
    return sql.join(
      [
        sql`consumer = ${consumer}`,
        f.id === undefined ? sql`true` : sql`id = ${f.id}`,
        f.topic === undefined ? sql`true` : sql`topic = ${f.topic}`,
        f.key === undefined ? sql`true` : sql`key = ${f.key}`,
        f.reason === undefined ? sql`true` : sql`reason = ${f.reason}`,
        statuses === null ? sql`true` : sql`status = ANY(${[...statuses]}::text[])`,
        f.before === undefined ? sql`true` : sql`created_at < ${f.before}`,
      ],
      sql` AND `,
    );
  };

  return {
    /**
     * Locks the watermark rows of a chunk's keys in one statement and returns their positions by
     * identity (a key without a row yet is absent: position 0). `keys` must be distinct and sorted
     * the same way by every consumer: the rows are locked in that order (`ORDER BY ord` under
     * `FOR UPDATE`), so an old and a new owner of a partition during a rebalance never deadlock. A
     * row lock, not a no-op update: no new row version per key per chunk, only the advance writes one.
     */
    async lockWatermarks(trx: AnyTrx, keys: readonly WatermarkKey[]): Promise<Map<string, number>> {
      const out = new Map<string, number>();
      if (keys.length === 0) return out;
      const r = await sql<{ topic: string; key: string; kind: string; position: string }>`
        SELECT w.topic, w.key, w.kind, w.position
        FROM ROWS FROM (json_to_recordset(${JSON.stringify(keys)}::json) AS (topic text, key text, kind text))
             WITH ORDINALITY AS t(topic, key, kind, ord)
        JOIN ${watermarks} AS w ON w.consumer = ${consumer} AND w.topic = t.topic AND w.key = t.key AND w.kind = t.kind
        ORDER BY t.ord
        FOR UPDATE OF w`.execute(trx);
      for (const row of r.rows) out.set(watermarkId(row.topic, row.key, row.kind), Number(row.position));
      return out;
    },

    /**
     * Writes the chunk's watermarks (positions, gap and duplicate counts) in one statement. A row that
     * was locked must still hold the position it was read at, and a key that had no row must not
     * have one now: another owner of the partition (a rebalance) inserted it since, and the chunk
     * must start again ({@link WatermarkRaceError}), or its records would be applied twice.
     */
    async advanceWatermarks(
      trx: AnyTrx,
      rows: readonly WatermarkAdvance[],
      locked: ReadonlyMap<string, number>,
    ): Promise<void> {
      if (rows.length === 0) return;
      const values = rows.map((r) => ({
        ...r,
        expected: locked.get(watermarkId(r.topic, r.key, r.kind)) ?? -1,
      }));
      // Rows that were locked are updated where they still hold the position read; keys that had no
      // row are inserted, and one inserted meanwhile by another owner is a conflict: both count short.
      const r = await sql<{ n: string }>`
        WITH v AS (
          SELECT * FROM json_to_recordset(${JSON.stringify(values)}::json)
            AS v(topic text, key text, kind text, position bigint, gaps bigint, duplicates bigint, expected bigint)
        ), updated AS (
          UPDATE ${watermarks} AS w
          SET position = v.position, gaps = w.gaps + v.gaps, duplicates = w.duplicates + v.duplicates, updated_at = now()
          FROM v
          WHERE v.expected >= 0 AND w.consumer = ${consumer} AND w.topic = v.topic AND w.key = v.key AND w.kind = v.kind
            AND w.position = v.expected
          RETURNING 1
        ), inserted AS (
          INSERT INTO ${watermarks} (consumer, topic, key, kind, position, gaps, duplicates)
          SELECT ${consumer}, v.topic, v.key, v.kind, v.position, v.gaps, v.duplicates FROM v WHERE v.expected < 0
          ON CONFLICT (consumer, topic, key, kind) DO NOTHING
          RETURNING 1
        )
        SELECT (SELECT count(*) FROM updated) + (SELECT count(*) FROM inserted) AS n`.execute(trx);
      if (Number(r.rows[0]?.n) !== rows.length) {
        throw new WatermarkRaceError({
          message:
            "a watermark of this chunk moved since it was read (another owner of the partition): the chunk starts again",
        });
      }
    },

    /** Moves one watermark forward to `position`, never back (a replayed dead letter). */
    async raiseWatermark(trx: AnyTrx, topic: string, key: string, kind: PositionKind, position: number): Promise<void> {
      await sql`
        INSERT INTO ${watermarks} AS w (consumer, topic, key, kind, position) VALUES (${consumer}, ${topic}, ${key}, ${kind}, ${position})
        ON CONFLICT (consumer, topic, key, kind) DO UPDATE SET position = greatest(w.position, excluded.position), updated_at = now()`.execute(
        trx,
      );
    },

    /** Records event ids (distinct); returns the ones that were new. The rest are duplicates. */
    async claimEventIds(trx: AnyTrx, topic: string, eventIds: readonly string[]): Promise<Set<string>> {
      if (eventIds.length === 0) return new Set();
      const r = await sql<{ event_id: string }>`
        INSERT INTO ${inbox} (consumer, event_id, topic)
        SELECT ${consumer}, e, ${topic} FROM unnest(${eventIds}::text[]) AS e
        ON CONFLICT (consumer, event_id) DO NOTHING RETURNING event_id`.execute(trx);
      return new Set(r.rows.map((x) => x.event_id));
    },

    /** The keys among `keys` that have an unresolved dead letter (`onDeadLetter: "park_key"`). */
    async parkedKeys(trx: AnyTrx, topic: string, keys: readonly string[]): Promise<Set<string>> {
      if (keys.length === 0) return new Set();
      const r = await sql<{ key: string }>`
        SELECT DISTINCT key FROM ${deadLetters}
        WHERE consumer = ${consumer} AND topic = ${topic} AND key = ANY(${keys}::text[])
          AND status IN ('pending', 'replay_requested')`.execute(trx);
      return new Set(r.rows.map((x) => x.key));
    },

    /** Inserts dead letters once per record (a redelivered record is not stored twice), in one statement. */
    async insertDeadLetters(trx: AnyTrx, rows: readonly DeadLetterInput[]): Promise<void> {
      if (rows.length === 0) return;
      const col = <T>(f: (r: DeadLetterInput) => T) => rows.map(f);
      await sql`
        INSERT INTO ${deadLetters} (consumer, topic, partition, "offset", key, value, headers, event_type, event_id, reason, detail)
        SELECT ${consumer}, d.topic, d.partition, d.o, d.key, d.value, d.headers::jsonb, d.event_type, d.event_id, d.reason, d.detail
        FROM unnest(${col((r) => r.topic)}::text[], ${col((r) => r.partition)}::int[], ${col((r) => r.offset)}::bigint[],
                    ${col((r) => r.envelope.key)}::text[], ${col((r) => r.value?.toString("utf8") ?? null)}::text[],
                    ${col((r) => JSON.stringify(r.envelope.headers))}::text[], ${col((r) => r.envelope.eventType)}::text[],
                    ${col((r) => r.envelope.eventId)}::text[], ${col((r) => r.reason)}::text[], ${col((r) => r.detail)}::text[])
             AS d(topic, partition, o, key, value, headers, event_type, event_id, reason, detail)
        ON CONFLICT (consumer, topic, partition, "offset") DO NOTHING`.execute(trx);
    },

    /** Locks one dead letter for a replay or skip; undefined when there is none with this id. */
    async lockDeadLetter(trx: AnyTrx, id: string): Promise<DeadLetterRow | undefined> {
      const r = await sql<DeadLetterDbRow>`
        SELECT ${deadLetterColumns} FROM ${deadLetters} WHERE consumer = ${consumer} AND id = ${id} FOR UPDATE`.execute(
        trx,
      );
      return r.rows[0] === undefined ? undefined : toDeadLetter(r.rows[0]);
    },

    /** The id of the oldest unresolved dead letter of a key (park_key replays go in this order). */
    async oldestUnresolved(trx: AnyTrx, topic: string, key: string): Promise<string | undefined> {
      const r = await sql<{ id: string }>`
        SELECT id FROM ${deadLetters}
        WHERE consumer = ${consumer} AND topic = ${topic} AND key = ${key} AND status IN ('pending', 'replay_requested')
        ORDER BY id LIMIT 1`.execute(trx);
      return r.rows[0] === undefined ? undefined : String(r.rows[0].id);
    },

    /** Sets a dead letter's status and logs the action with its actor, in the caller's transaction. */
    async resolveDeadLetter(
      trx: AnyTrx,
      id: string,
      action: "replayed" | "skipped" | "replay_failed" | "replay_requested",
      actor: string,
      detail: string | null,
    ): Promise<void> {
      if (action === "replay_requested") {
        await sql`UPDATE ${deadLetters} SET status = 'replay_requested', requested_by = ${actor}, requested_at = now()
                  WHERE consumer = ${consumer} AND id = ${id}`.execute(trx);
      } else if (action === "replay_failed") {
        await sql`UPDATE ${deadLetters} SET status = 'pending' WHERE consumer = ${consumer} AND id = ${id}`.execute(
          trx,
        );
      } else {
        await sql`UPDATE ${deadLetters} SET status = ${action}, resolved_by = ${actor}, resolved_at = now()
                  WHERE consumer = ${consumer} AND id = ${id}`.execute(trx);
      }
      await sql`INSERT INTO ${actions} (dead_letter_id, consumer, action, actor, detail)
                VALUES (${id}, ${consumer}, ${action}, ${actor}, ${detail})`.execute(trx);
    },

    /** Ids of the dead letters a filter takes, oldest first. */
    async deadLetterIds(db: AnyDb | AnyTrx, filter: DeadLetterFilter): Promise<string[]> {
      const r = await sql<{ id: string }>`
        SELECT id FROM ${deadLetters} WHERE ${filterSql(filter, ["pending", "replay_requested"])}
        ORDER BY id LIMIT ${filter.limit ?? 10_000}`.execute(db);
      return r.rows.map((x) => String(x.id));
    },

    /** Dead letters, oldest first. */
    async listDeadLetters(db: AnyDb, filter: DeadLetterFilter): Promise<DeadLetterRow[]> {
      const r = await sql<DeadLetterDbRow>`
        SELECT ${deadLetterColumns} FROM ${deadLetters} WHERE ${filterSql(filter, null)}
        ORDER BY id LIMIT ${filter.limit ?? 100}`.execute(db);
      return r.rows.map(toDeadLetter);
    },

    async totals(db: AnyDb): Promise<InboxTotals> {
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
  };
}

export type ConsumerStore = ReturnType<typeof consumerStore>;
