import type { ReplayRow } from "../database/statements.ts";
import { REPLAY_HEADER } from "../database/statements.ts";

/**
 * An event a replay selection took: from its original outbox row, or from the events table alone
 * (then `payload` is null: the relay reads the events row).
 */
export interface ReplayCandidate extends Omit<ReplayRow, "topic"> {
  /** The original topic; null when the outbox row is gone (an event-sourced event from the events table). */
  readonly sourceTopic: string | null;
  /** The original outbox row, or null. */
  readonly outboxId: string | null;
  /** The original row's status; `events-only` when only the events row is left. */
  readonly status: "pending" | "published" | "dead_lettered" | "skipped" | "events-only";
}

export interface PlannedRow extends ReplayRow {
  readonly sourceTopic: string | null;
  readonly originalOutboxId: string | null;
  /** Aggregate version or key sequence. */
  readonly position: number | null;
}

export interface ExcludedCandidate {
  readonly eventId: string;
  readonly key: string;
  readonly outboxId: string | null;
  readonly why: string;
}

/** What a replay would write, and what it cannot or may not. */
export interface ReplayPlan {
  readonly rows: readonly PlannedRow[];
  /** Not published (pending, dead-lettered, skipped): left out, with the reason. */
  readonly excluded: readonly ExcludedCandidate[];
  /** Events whose original topic is unknown (outbox row gone) while no --to-topic names one. */
  readonly unknownTopic: readonly ReplayCandidate[];
  /** Events that would go back to their original topic while --to-original-topic was not given. */
  readonly toOriginalTopic: readonly ReplayCandidate[];
}

const positionOf = (c: { aggregateVersion: number | null; keySequence: string | null }) =>
  c.aggregateVersion ?? (c.keySequence === null ? null : Number(c.keySequence));

/**
 * Plans a replay. Candidates come in commit order as far as the database knows it (events-only
 * rows by stream and version, then outbox rows by id); within each (target topic, key) the rows
 * are then put in position order (aggregate version or key sequence) in the slots the key already
 * occupies, so a key's replayed events are published in their original order. Each row keeps its
 * event id and position and gets `eventlane-replay: <replayId>` on top of the original headers.
 */
export function planReplay(
  candidates: readonly ReplayCandidate[],
  target: { readonly toTopic: string | undefined; readonly toOriginalTopic: boolean },
  replayId: string,
): ReplayPlan {
  const excluded: ExcludedCandidate[] = [];
  const unknownTopic: ReplayCandidate[] = [];
  const toOriginalTopic: ReplayCandidate[] = [];
  const planned: PlannedRow[] = [];
  const seen = new Set<string>();
  for (const c of candidates) {
    if (seen.has(c.eventId)) continue;
    seen.add(c.eventId);
    if (c.status !== "published" && c.status !== "events-only") {
      excluded.push({
        eventId: c.eventId,
        key: c.key,
        outboxId: c.outboxId,
        why:
          c.status === "pending"
            ? "not published yet (pending): the relay publishes it"
            : c.status === "dead_lettered"
              ? `dead-lettered: requeue it (eventlane dead-letters requeue ${c.outboxId})`
              : "skipped as a dead letter: it was never published",
      });
      continue;
    }
    const topic = target.toTopic ?? c.sourceTopic;
    if (topic === null) {
      unknownTopic.push(c);
      continue;
    }
    if (topic === c.sourceTopic && !target.toOriginalTopic) {
      toOriginalTopic.push(c);
      continue;
    }
    const { [REPLAY_HEADER]: _earlier, ...headers } = c.headers;
    planned.push({
      eventId: c.eventId,
      topic,
      key: c.key,
      keyHash: c.keyHash,
      eventType: c.eventType,
      schemaVersion: c.schemaVersion,
      aggregateType: c.aggregateType,
      aggregateId: c.aggregateId,
      aggregateVersion: c.aggregateVersion,
      keySequence: c.keySequence,
      payload: c.payload,
      headers: { ...headers, [REPLAY_HEADER]: replayId },
      sourceTopic: c.sourceTopic,
      originalOutboxId: c.outboxId,
      position: positionOf(c),
    });
  }
  // Per (topic, key): the same slots, filled in position order (a stable sort keeps rows without a
  // position where they were relative to each other).
  const slots = new Map<string, number[]>();
  planned.forEach((row, i) => {
    const k = `${row.topic}\u0000${row.key}`;
    const list = slots.get(k);
    if (list === undefined) slots.set(k, [i]);
    else list.push(i);
  });
  const rows = [...planned];
  for (const indexes of slots.values()) {
    if (indexes.length < 2) continue;
    const sorted = indexes
      .map((i) => planned[i]!)
      .sort((a, b) =>
        a.position === null || b.position === null
          ? Number(a.position === null) - Number(b.position === null)
          : a.position - b.position,
      );
    indexes.forEach((slot, j) => {
      rows[slot] = sorted[j]!;
    });
  }
  return { rows, excluded, unknownTopic, toOriginalTopic };
}
