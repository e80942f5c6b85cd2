import type { Kysely } from "kysely";
import { decodeRecord, refOf } from "../apply/chunk-applier.ts";
import { applyItem, ChunkHandlerFailure, type Handlers, hasHandler, runHandlers } from "../apply/run-handlers.ts";
import { DeadLetterNotFoundError, DeadLetterNotReplayableError } from "../errors.ts";
import type { RecordRef } from "../events.ts";
import type { ResolvedConsumerOptions } from "../options.ts";
import type { ConsumerStore } from "../store/consumer-store.ts";
import { checkId, type DeadLetterActionResult } from "./dead-letters.ts";

export type ReplayResult = DeadLetterActionResult & { readonly ref: RecordRef | null };

/**
 * Replays one dead letter exactly once. The watermark cannot guard a replay (later records of the
 * key have moved it past the dead letter), so the dead-letter row does: the transaction locks it,
 * needs it pending or replay-requested, runs the handler (whose context says it is a replay, with
 * the original position), raises the key's watermark to the record's position if it is below (never
 * back), and marks the row replayed. Two replays at once serialise on the row lock; the second finds
 * it replayed and changes nothing. A handler that throws rolls it all back, the row stays (or goes
 * back to) pending with a `replay_failed` entry in its log, and the `HandlerFailure` is thrown.
 */
export async function replayDeadLetter<DB>(
  deps: {
    readonly db: Kysely<DB>;
    readonly store: ConsumerStore;
    readonly options: ResolvedConsumerOptions<DB, readonly never[]>;
    readonly handlers: Handlers<DB>;
  },
  id: string,
  actor: string,
): Promise<ReplayResult> {
  const { db, store, options, handlers } = deps;
  checkId(id);
  try {
    return await db.transaction().execute(async (trx): Promise<ReplayResult> => {
      const row = await store.lockDeadLetter(trx, id);
      if (row === undefined) throw new DeadLetterNotFoundError({ id, message: `no dead letter with id ${id}` });
      if (row.status === "replayed" || row.status === "skipped") {
        return { id, outcome: "unchanged", status: row.status, ref: null };
      }
      const record = decodeRecord(
        row.topic,
        row.partition,
        {
          offset: row.offset,
          key: row.key === null ? null : Buffer.from(row.key, "utf8"),
          value: row.value === null ? null : Buffer.from(row.value, "utf8"),
          headers: row.headers,
          timestamp: row.createdAt.getTime(),
        },
        options.definitions,
      );
      if (!record.decoded.ok) {
        throw new DeadLetterNotReplayableError({
          id,
          reason: "undecodable",
          message: `dead letter ${id} still does not decode (${record.decoded.reason}: ${record.decoded.detail}); fix the definitions or skip it`,
        });
      }
      const { key, position, positionKind, eventId } = record.envelope;
      if (key === null) {
        throw new DeadLetterNotReplayableError({ id, reason: "no_key", message: `dead letter ${id} has no key` });
      }
      if (options.onDeadLetter === "park_key") {
        const oldest = await store.oldestUnresolved(trx, row.topic, key);
        if (oldest !== id) {
          throw new DeadLetterNotReplayableError({
            id,
            reason: "older_unresolved",
            message: `dead letter ${oldest} of key ${JSON.stringify(key)} is older and unresolved: replay or skip it first (onDeadLetter: park_key keeps per-key order)`,
          });
        }
      }
      if (position !== null && positionKind !== null) {
        await store.raiseWatermark(trx, row.topic, key, positionKind, position);
      } else {
        await store.claimEventIds(trx, row.topic, [eventId as string]);
      }
      const type = record.decoded.definition.type;
      if (hasHandler(handlers, type)) {
        const replay = { deadLetterId: id, reason: row.reason, actor };
        await runHandlers(handlers, trx as never, [applyItem(record, 0, replay)], row.topic, row.partition);
      }
      await store.resolveDeadLetter(trx, id, "replayed", actor, null);
      return { id, outcome: "replayed", status: "replayed", ref: refOf(record) };
    });
  } catch (error) {
    if (error instanceof ChunkHandlerFailure) {
      await db
        .transaction()
        .execute((trx) => store.resolveDeadLetter(trx, id, "replay_failed", actor, error.failure.message));
      throw error.failure;
    }
    throw error;
  }
}
