import type { DomainEvent } from "@eventlane/core";
import type { Transaction } from "kysely";
import { HandlerFailure } from "../errors.ts";
import type { BatchHandler, EventHandler, RecordContext, ReplayInfo } from "../options.ts";
import type { DecodedRecord } from "./plan-chunk.ts";

/** A record the chunk applies: its decoded event and its context, at `index` in the chunk. */
export interface ApplyItem {
  readonly index: number;
  readonly event: DomainEvent;
  readonly context: RecordContext;
}

/** A handler threw inside a chunk: `from`..`to` are the chunk indices of the records it was given. */
export class ChunkHandlerFailure extends Error {
  readonly from: number;
  readonly to: number;
  /** True when the handler was given one record (so it is the failing one). */
  readonly single: boolean;
  readonly failure: HandlerFailure;

  constructor(from: number, to: number, single: boolean, failure: HandlerFailure) {
    super(failure.message);
    this.from = from;
    this.to = to;
    this.single = single;
    this.failure = failure;
  }
}

/** The handlers of a consumer, as resolved from its options. */
export interface Handlers<DB> {
  readonly handlers: ReadonlyMap<string, EventHandler<DB, DomainEvent>>;
  readonly batchHandlers: ReadonlyMap<string, BatchHandler<DB, DomainEvent>>;
  readonly handleBatch: BatchHandler<DB, DomainEvent> | null;
}

export function applyItem(record: DecodedRecord, index: number, replay: ReplayInfo | null): ApplyItem {
  if (!record.decoded.ok) throw new Error("applyItem of an undecoded record");
  const e = record.envelope;
  return {
    index,
    event: { type: record.decoded.definition.type, data: record.decoded.data },
    context: {
      topic: record.topic,
      partition: record.partition,
      offset: record.offset,
      key: e.key as string,
      eventId: e.eventId as string,
      storedSchemaVersion: e.schemaVersion as number,
      position: e.position,
      positionKind: e.positionKind,
      aggregateType: e.aggregateType,
      aggregateId: e.aggregateId,
      headers: e.headers,
      replay,
    },
  };
}

const wrap = (eventType: string, cause: unknown) =>
  new HandlerFailure({
    eventType,
    cause,
    message: `handler of "${eventType}" failed: ${cause instanceof Error ? cause.message : String(cause)}`,
  });

/** True when a decoded record has something to run (a handler of either kind for its type). */
export function handles<DB>(h: Handlers<DB>, record: DecodedRecord): boolean {
  return record.decoded.ok && hasHandler(h, record.decoded.definition.type);
}

/** True when the chunk has something to run for this event type (a handler of either kind). */
export function hasHandler<DB>(h: Handlers<DB>, type: string): boolean {
  return h.handleBatch !== null || h.handlers.has(type) || h.batchHandlers.has(type);
}

/**
 * Runs the handlers of `items` (in offset order) on the chunk's transaction: `handleBatch` once for
 * all of them, a batch handler once per run of consecutive items of its type (so per-key order
 * across types holds), a per-record handler once per item. Throws {@link ChunkHandlerFailure}.
 */
export async function runHandlers<DB>(
  h: Handlers<DB>,
  trx: Transaction<DB>,
  items: readonly ApplyItem[],
  topic: string,
  partition: number,
): Promise<void> {
  if (items.length === 0) return;
  const batchContext = { trx, topic, partition };
  const callBatch = async (handler: BatchHandler<DB, DomainEvent>, run: readonly ApplyItem[], type: string) => {
    try {
      await handler(
        run.map((i) => ({ event: i.event, context: i.context })),
        batchContext,
      );
    } catch (cause) {
      throw new ChunkHandlerFailure(
        (run[0] as ApplyItem).index,
        (run[run.length - 1] as ApplyItem).index,
        run.length === 1,
        wrap(type, cause),
      );
    }
  };
  if (h.handleBatch !== null) {
    await callBatch(h.handleBatch, items, items.length === 1 ? (items[0] as ApplyItem).event.type : "handleBatch");
    return;
  }
  for (let i = 0; i < items.length; ) {
    const item = items[i] as ApplyItem;
    const type = item.event.type;
    const batch = h.batchHandlers.get(type);
    if (batch !== undefined) {
      let j = i + 1;
      while (j < items.length && (items[j] as ApplyItem).event.type === type) j++;
      await callBatch(batch, items.slice(i, j), type);
      i = j;
      continue;
    }
    const handler = h.handlers.get(type);
    if (handler !== undefined) {
      try {
        await handler(item.event, { ...item.context, trx });
      } catch (cause) {
        throw new ChunkHandlerFailure(item.index, item.index, true, wrap(type, cause));
      }
    }
    i++;
  }
}
