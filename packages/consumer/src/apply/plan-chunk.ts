import type { DeadLetterReason } from "../message/dead-letter-reason.ts";
import type { DecodeResult, MessageEnvelope, PositionKind } from "../message/decode-message.ts";
import type { DeadLetterPolicy, GapPolicy } from "../options.ts";
import { type WatermarkAdvance, type WatermarkKey, watermarkId as identity } from "../store/consumer-store.ts";

/** A record of a chunk, read and decoded (decoding is pure, so it happens once per delivery). */
export interface DecodedRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly value: Buffer | null;
  readonly envelope: MessageEnvelope;
  readonly decoded: DecodeResult;
}

export interface Gap {
  readonly expected: number;
  readonly actual: number;
}

/** What the chunk's transaction does with one record. */
export type Step =
  | { readonly kind: "apply"; readonly record: DecodedRecord; readonly index: number; readonly gap: Gap | null }
  | {
      readonly kind: "duplicate";
      readonly record: DecodedRecord;
      readonly index: number;
      readonly watermark: number | null;
    }
  | {
      readonly kind: "dead_letter";
      readonly record: DecodedRecord;
      readonly index: number;
      readonly reason: DeadLetterReason;
      readonly detail: string;
      readonly gap: Gap | null;
    };

export interface ChunkPlan {
  readonly steps: readonly Step[];
  /** The watermarks to write at the end of the chunk (only those the chunk changed). */
  readonly advances: readonly WatermarkAdvance[];
}

/** The watermark rows a chunk must lock: distinct and in one global order (see `lockWatermarks`). */
export function watermarkKeys(records: readonly DecodedRecord[]): WatermarkKey[] {
  const byId = new Map<string, WatermarkKey>();
  for (const r of records) {
    const { key, positionKind, position } = r.envelope;
    if (!r.decoded.ok || key === null || positionKind === null || position === null) continue;
    byId.set(identity(r.topic, key, positionKind), { topic: r.topic, key, kind: positionKind });
  }
  return [...byId.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, k]) => k);
}

/** Event ids the chunk must claim in the inbox: decodable records without a position, of keys not parked. */
export function inboxEventIds(records: readonly DecodedRecord[], parked: ReadonlySet<string>): string[] {
  const ids = new Set<string>();
  for (const r of records) {
    if (r.decoded.ok && r.envelope.position === null && !parked.has(r.envelope.key as string)) {
      ids.add(r.envelope.eventId as string);
    }
  }
  return [...ids];
}

/**
 * Decides in memory, in offset order, what happens to each record of a chunk: applied (with a gap
 * or not), a duplicate (at or below its key's watermark, or an event id already claimed), or a dead
 * letter (undecodable, a refused gap, a parked key). The watermarks start from the locked rows and
 * move as the records are planned, so a position repeated inside the chunk is a duplicate too.
 */
export function planChunk(input: {
  readonly records: readonly DecodedRecord[];
  /** Locked positions by `watermarkId`. */
  readonly watermarks: ReadonlyMap<string, number>;
  /** Event ids newly claimed in the inbox by this chunk. */
  readonly claimed: ReadonlySet<string>;
  /** Keys with an unresolved dead letter (`park_key` only). */
  readonly parked: ReadonlySet<string>;
  readonly onGap: GapPolicy;
  readonly onDeadLetter: DeadLetterPolicy;
}): ChunkPlan {
  const positions = new Map(input.watermarks);
  const claimed = new Set(input.claimed);
  const parked = new Set(input.parked);
  const changed = new Map<string, { key: WatermarkKey; gaps: number; duplicates: number }>();
  const touch = (id: string, key: WatermarkKey) => {
    let c = changed.get(id);
    if (c === undefined) {
      c = { key, gaps: 0, duplicates: 0 };
      changed.set(id, c);
    }
    return c;
  };
  const steps: Step[] = [];
  const deadLetter = (
    record: DecodedRecord,
    index: number,
    reason: DeadLetterReason,
    detail: string,
    gap: Gap | null,
  ) => {
    steps.push({ kind: "dead_letter", record, index, reason, detail, gap });
    if (input.onDeadLetter === "park_key" && record.envelope.key !== null) parked.add(record.envelope.key);
  };

  input.records.forEach((record, index) => {
    const { decoded, envelope } = record;
    if (!decoded.ok) {
      deadLetter(record, index, decoded.reason, decoded.detail, null);
      return;
    }
    const key = envelope.key as string;
    if (parked.has(key)) {
      deadLetter(
        record,
        index,
        "key_parked",
        `key ${JSON.stringify(key)} has an unresolved dead letter (onDeadLetter: park_key)`,
        null,
      );
      return;
    }
    const { position, positionKind } = envelope;
    if (position === null || positionKind === null) {
      const eventId = envelope.eventId as string;
      if (claimed.delete(eventId)) steps.push({ kind: "apply", record, index, gap: null });
      else steps.push({ kind: "duplicate", record, index, watermark: null });
      return;
    }
    const id = identity(record.topic, key, positionKind);
    const wmKey: WatermarkKey = { topic: record.topic, key, kind: positionKind as PositionKind };
    const watermark = positions.get(id) ?? 0;
    if (position <= watermark) {
      touch(id, wmKey).duplicates++;
      steps.push({ kind: "duplicate", record, index, watermark });
      return;
    }
    let gap: Gap | null = null;
    if (position > watermark + 1) {
      gap = { expected: watermark + 1, actual: position };
      if (input.onGap === "refuse") {
        touch(id, wmKey).gaps++;
        deadLetter(
          record,
          index,
          "gap_refused",
          `key ${JSON.stringify(key)}: expected ${positionKind} ${gap.expected}, got ${gap.actual}`,
          gap,
        );
        return;
      }
      touch(id, wmKey).gaps++;
    } else {
      touch(id, wmKey);
    }
    positions.set(id, position);
    steps.push({ kind: "apply", record, index, gap });
  });

  const advances: WatermarkAdvance[] = [];
  for (const [id, c] of changed) {
    advances.push({ ...c.key, position: positions.get(id) ?? 0, gaps: c.gaps, duplicates: c.duplicates });
  }
  return { steps, advances };
}
