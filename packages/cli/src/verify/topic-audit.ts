import { Headers } from "@eventlane/core";
import { REPLAY_HEADER } from "../database/statements.ts";

/** One record read back from the topic. */
export interface AuditMessage {
  readonly partition: number;
  readonly offset: string;
  readonly key: string | null;
  /** The record's timestamp (ms). */
  readonly timestamp: number;
  readonly headers: Readonly<Record<string, string>>;
}

/** A partition as read: from its log start offset (`low`) to the end offset taken at the start (`high`). */
export interface PartitionRange {
  readonly partition: number;
  readonly low: string;
  readonly high: string;
}

/** An event the database says was published to the topic before the cut-off. */
export interface ExpectedEvent {
  readonly eventId: string;
  /** The replay it belongs to (a replay row's `eventlane-replay` header), or null for the original. */
  readonly replayId: string | null;
  readonly key: string;
  /** The partition its key maps to (murmur2, as the relay's producers partition). */
  readonly partition: number;
  readonly position: number | null;
  readonly createdAt: Date;
  readonly outboxId: string | null;
  /** `outbox`: a published outbox row; `events`: an event-sourced event whose outbox row is gone. */
  readonly source: "outbox" | "events";
}

export interface MissingEvent {
  readonly eventId: string;
  readonly replayId: string | null;
  readonly key: string;
  readonly partition: number;
  readonly position: number | null;
  readonly outboxId: string | null;
  readonly source: "outbox" | "events";
  readonly createdAt: string;
  /** The first retained offset of its partition: it should be at or after it. */
  readonly partitionLowOffset: string;
}

export interface ReorderedEvent {
  readonly key: string;
  readonly partition: number;
  readonly offset: string;
  readonly eventId: string;
  readonly replayId: string | null;
  readonly positionKind: "sequence" | "version";
  readonly position: number;
  /** The highest position of the key before it, and where that was. */
  readonly previousPosition: number;
  readonly previousOffset: string;
  readonly previousEventId: string;
}

export interface SplitKey {
  readonly key: string;
  readonly partitions: readonly number[];
}

export interface DuplicateEvent {
  readonly eventId: string;
  readonly replayId: string | null;
  readonly key: string | null;
  readonly partition: number;
  readonly offset: string;
  readonly firstOffset: string;
}

/** What reading the topic and reconciling it with the database found. Lists hold at most `maxListed`. */
export interface AuditFindings {
  readonly messages: number;
  /** Records without an `eventlane-event-id` header (not Eventlane's): not checked. */
  readonly foreignMessages: number;
  /** Records carrying the replay marker. */
  readonly replayedMessages: number;
  readonly distinctEvents: number;
  /** Records of an event (and replay) already read: redeliveries, counted, never a failure. */
  readonly duplicates: { readonly count: number; readonly listed: readonly DuplicateEvent[] };
  readonly expected: { readonly outboxRows: number; readonly eventsWithoutOutbox: number };
  readonly present: number;
  readonly missing: { readonly count: number; readonly listed: readonly MissingEvent[] };
  /** Absent, but older than the first record its partition still holds (topic retention). */
  readonly expired: { readonly count: number; readonly listed: readonly MissingEvent[] };
  /** Absent from a compacted topic that holds a later record of the key. */
  readonly compacted: { readonly count: number; readonly listed: readonly MissingEvent[] };
  /** Absent events without an outbox row of a key with a skipped dead letter: maybe never sent. */
  readonly unverifiable: { readonly count: number; readonly listed: readonly MissingEvent[] };
  readonly reordered: { readonly count: number; readonly listed: readonly ReorderedEvent[] };
  readonly splitKeys: { readonly count: number; readonly listed: readonly SplitKey[] };
  /** Records without a position header (key sequence or aggregate version): order not checked. */
  readonly unpositioned: number;
  readonly ok: boolean;
}

interface Last {
  position: number;
  offset: string;
  eventId: string;
}

class Capped<T> {
  count = 0;
  readonly listed: T[] = [];
  readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  add(item: T): void {
    this.count++;
    if (this.listed.length < this.max) this.listed.push(item);
  }
  get value() {
    return { count: this.count, listed: this.listed };
  }
}

const identity = (eventId: string, replayId: string | null) => `${eventId}\u0000${replayId ?? ""}`;

/**
 * Reads a topic record by record (each partition in offset order) and keeps what the audit needs:
 * the first occurrence of each (event id, replay id), per-key order by position at first
 * occurrence, the partitions of each key, and the first record each partition still holds.
 * Memory grows with the distinct events and keys, not with the records' sizes.
 */
export class TopicAudit {
  readonly #ranges: ReadonlyMap<number, PartitionRange>;
  readonly #maxListed: number;
  #messages = 0;
  #foreign = 0;
  #replayed = 0;
  #unpositioned = 0;
  readonly #firsts = new Map<string, { partition: number; offset: string }>();
  readonly #last = new Map<string, Last>();
  readonly #keyPartition = new Map<string, number>();
  readonly #split = new Map<string, Set<number>>();
  readonly #firstRetained = new Map<number, { offset: string; timestamp: number }>();
  readonly #eventTypes = new Set<string>();
  readonly #duplicates: Capped<DuplicateEvent>;
  readonly #reordered: Capped<ReorderedEvent>;

  constructor(ranges: readonly PartitionRange[], maxListed = 100) {
    this.#ranges = new Map(ranges.map((r) => [r.partition, r]));
    this.#maxListed = maxListed;
    this.#duplicates = new Capped(maxListed);
    this.#reordered = new Capped(maxListed);
  }

  /** Takes one record; records of one partition must come in offset order. */
  observe(m: AuditMessage): void {
    this.#messages++;
    if (!this.#firstRetained.has(m.partition)) {
      this.#firstRetained.set(m.partition, { offset: m.offset, timestamp: m.timestamp });
    }
    const eventId = m.headers[Headers.eventId];
    if (eventId === undefined || eventId === "") {
      this.#foreign++;
      return;
    }
    const replayId = m.headers[REPLAY_HEADER] ?? null;
    if (replayId !== null) this.#replayed++;
    // Event-sourced records carry the aggregate version: only their events outlive their outbox rows.
    const eventType = m.headers[Headers.eventType];
    if (replayId === null && eventType !== undefined && m.headers[Headers.aggregateVersion] !== undefined) {
      this.#eventTypes.add(eventType);
    }
    const key = m.key;
    if (key !== null) {
      const first = this.#keyPartition.get(key);
      if (first === undefined) this.#keyPartition.set(key, m.partition);
      else if (first !== m.partition) {
        const set = this.#split.get(key) ?? new Set([first]);
        set.add(m.partition);
        this.#split.set(key, set);
      }
    }
    const id = identity(eventId, replayId);
    const seen = this.#firsts.get(id);
    if (seen !== undefined) {
      this.#duplicates.add({
        eventId,
        replayId,
        key,
        partition: m.partition,
        offset: m.offset,
        firstOffset: seen.offset,
      });
      return;
    }
    this.#firsts.set(id, { partition: m.partition, offset: m.offset });
    const sequence = m.headers[Headers.keySequence];
    const version = m.headers[Headers.aggregateVersion];
    const kind = sequence !== undefined ? "sequence" : version !== undefined ? "version" : undefined;
    const position = Number(sequence ?? version);
    if (key === null || kind === undefined || !Number.isSafeInteger(position)) {
      this.#unpositioned++;
      return;
    }
    // Order holds per key within one partition, separately for the originals and for each replay.
    const group = `${kind}\u0000${m.partition}\u0000${replayId ?? ""}\u0000${key}`;
    const last = this.#last.get(group);
    if (last !== undefined && position <= last.position) {
      this.#reordered.add({
        key,
        partition: m.partition,
        offset: m.offset,
        eventId,
        replayId,
        positionKind: kind,
        position,
        previousPosition: last.position,
        previousOffset: last.offset,
        previousEventId: last.eventId,
      });
      return;
    }
    this.#last.set(group, { position, offset: m.offset, eventId });
  }

  /**
   * Reconciles what was read with what the database expects: each expected event present, or
   * expired (older than its partition's first retained record, on a partition that lost records),
   * compacted (a compacted topic holding a later record of the key), unverifiable (no outbox row
   * and the key has a skipped dead letter), or missing.
   */
  reconcile(
    expected: Iterable<ExpectedEvent>,
    options: { readonly compacted: boolean; readonly skippedKeys: ReadonlySet<string> },
  ): AuditFindings {
    const missing = new Capped<MissingEvent>(this.#maxListed);
    const expired = new Capped<MissingEvent>(this.#maxListed);
    const compacted = new Capped<MissingEvent>(this.#maxListed);
    const unverifiable = new Capped<MissingEvent>(this.#maxListed);
    let present = 0;
    let outboxRows = 0;
    let eventsWithoutOutbox = 0;
    const counted = new Set<string>();
    for (const e of expected) {
      const id = identity(e.eventId, e.replayId);
      if (counted.has(id)) continue;
      counted.add(id);
      if (e.source === "outbox") outboxRows++;
      else eventsWithoutOutbox++;
      if (this.#firsts.has(id)) {
        present++;
        continue;
      }
      const range = this.#ranges.get(e.partition);
      const low = range?.low ?? "0";
      const absent: MissingEvent = {
        eventId: e.eventId,
        replayId: e.replayId,
        key: e.key,
        partition: e.partition,
        position: e.position,
        outboxId: e.outboxId,
        source: e.source,
        createdAt: e.createdAt.toISOString(),
        partitionLowOffset: low,
      };
      const first = this.#firstRetained.get(e.partition);
      // Written before the partition's first retained record was sent, on a partition that has lost
      // records: removed by the topic's retention (or a DeleteRecords), not lost by the relay.
      if (BigInt(low) > 0n && (first === undefined || e.createdAt.getTime() <= first.timestamp)) {
        expired.add(absent);
      } else if (options.compacted && this.#keyPartition.has(e.key)) {
        compacted.add(absent);
      } else if (e.source === "events" && options.skippedKeys.has(e.key)) {
        unverifiable.add(absent);
      } else {
        missing.add(absent);
      }
    }
    const splitKeys = new Capped<SplitKey>(this.#maxListed);
    for (const [key, partitions] of this.#split) {
      splitKeys.add({ key, partitions: [...partitions].sort((a, b) => a - b) });
    }
    return {
      messages: this.#messages,
      foreignMessages: this.#foreign,
      replayedMessages: this.#replayed,
      distinctEvents: this.#firsts.size,
      duplicates: this.#duplicates.value,
      expected: { outboxRows, eventsWithoutOutbox },
      present,
      missing: missing.value,
      expired: expired.value,
      compacted: compacted.value,
      unverifiable: unverifiable.value,
      reordered: this.#reordered.value,
      splitKeys: splitKeys.value,
      unpositioned: this.#unpositioned,
      ok: missing.count === 0 && this.#reordered.count === 0 && splitKeys.count === 0,
    };
  }

  /** The event types of the original (not replayed) event-sourced records read. */
  get eventSourcedTypes(): ReadonlySet<string> {
    return this.#eventTypes;
  }

  /** The first record each partition still holds (offset and timestamp), for the report. */
  firstRetained(partition: number): { offset: string; timestamp: number } | undefined {
    return this.#firstRetained.get(partition);
  }
}
