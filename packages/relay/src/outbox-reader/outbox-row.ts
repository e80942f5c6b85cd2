/** One pending outbox row as the relay reads it (payload already joined from the events table). */
export interface OutboxRow {
  /** bigint id as a decimal string. */
  readonly id: string;
  readonly eventId: string;
  readonly topic: string;
  readonly key: string;
  readonly eventType: string;
  readonly schemaVersion: number;
  readonly aggregateType: string | null;
  readonly aggregateId: string | null;
  readonly aggregateVersion: number | null;
  readonly keySequence: string | null;
  /** The JSON payload as text; null when an event-sourced row has no events row (a record error). */
  readonly payload: string | null;
  readonly headers: unknown;
  readonly attempts: number;
  /** When the row was inserted (Unix milliseconds), for commit-to-publish latency. */
  readonly createdAtMs: number;
}
