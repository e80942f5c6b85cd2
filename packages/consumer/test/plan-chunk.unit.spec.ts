import { Headers } from "@eventlane/core";
import { describe, expect, it } from "vitest";
import { decodeRecord } from "../src/apply/chunk-applier.ts";
import { inboxEventIds, planChunk, watermarkKeys } from "../src/apply/plan-chunk.ts";
import { watermarkId } from "../src/store/consumer-store.ts";
import { record, roomEvents } from "./fixtures/setup.ts";

const { RoomBooked } = roomEvents("t");
const definitions = new Map([[RoomBooked.type, RoomBooked]]);
let offset = 0;
const rec = (key: string, sequence: number | undefined, extra: { eventId?: string; raw?: string } = {}) => {
  const r = record({
    key,
    type: "room_booked",
    schemaVersion: 2,
    ...(sequence === undefined ? {} : { sequence }),
    value: { roomId: key, guest: "g", nights: 1 },
    ...extra,
  });
  return decodeRecord(
    "t",
    0,
    {
      offset: String(offset++),
      key: Buffer.from(r.key),
      value: r.value === null ? null : Buffer.from(r.value),
      headers: r.headers,
      timestamp: 0,
    },
    definitions as never,
  );
};
const plan = (
  records: ReturnType<typeof rec>[],
  wm: Record<string, number> = {},
  more: Partial<Parameters<typeof planChunk>[0]> = {},
) =>
  planChunk({
    records,
    watermarks: new Map(Object.entries(wm).map(([k, v]) => [watermarkId("t", k, "key_sequence"), v])),
    claimed: new Set(),
    parked: new Set(),
    onGap: "continue",
    onDeadLetter: "continue",
    ...more,
  });

describe("planning a chunk in memory", () => {
  it("locks each watermark once, in one global order whatever the record order", () => {
    const keys = watermarkKeys([rec("b", 1), rec("a", 1), rec("b", 2), rec("c", 1), rec("a", 2)]);
    expect(keys.map((k) => k.key)).toEqual(["a", "b", "c"]);
    expect(watermarkKeys([rec("c", 3), rec("a", 9), rec("b", 1)]).map((k) => k.key)).toEqual(["a", "b", "c"]);
  });

  it("applies new positions in order, skips what is at or below the watermark, also a repeat inside the chunk", () => {
    const p = plan([rec("a", 3), rec("a", 4), rec("a", 4), rec("b", 1), rec("a", 2)], { a: 2 });
    expect(p.steps.map((s) => s.kind)).toEqual(["apply", "apply", "duplicate", "apply", "duplicate"]);
    expect(p.advances).toEqual([
      { topic: "t", key: "a", kind: "key_sequence", position: 4, gaps: 0, duplicates: 2 },
      { topic: "t", key: "b", kind: "key_sequence", position: 1, gaps: 0, duplicates: 0 },
    ]);
  });

  it("reports a gap and applies it, or with onGap refuse dead-letters it and everything after it on that key", () => {
    const records = [rec("a", 1), rec("a", 3), rec("a", 4)];
    const go = plan(records, {});
    expect(go.steps.map((s) => s.kind)).toEqual(["apply", "apply", "apply"]);
    expect(go.steps[1]).toMatchObject({ gap: { expected: 2, actual: 3 } });
    expect(go.advances[0]).toMatchObject({ position: 4, gaps: 1 });
    const refuse = plan(records, {}, { onGap: "refuse" });
    expect(refuse.steps.map((s) => (s.kind === "dead_letter" ? s.reason : s.kind))).toEqual([
      "apply",
      "gap_refused",
      "gap_refused",
    ]);
    expect(refuse.advances[0]).toMatchObject({ position: 1, gaps: 2 });
  });

  it("with park_key, a dead letter parks its key for the rest of the chunk, and parked keys stay parked", () => {
    const p = plan(
      [rec("a", 1, { raw: "{bad" }), rec("a", 2), rec("b", 1), rec("c", 1)],
      {},
      { onDeadLetter: "park_key", parked: new Set(["c"]) },
    );
    expect(p.steps.map((s) => (s.kind === "dead_letter" ? s.reason : s.kind))).toEqual([
      "invalid_json",
      "key_parked",
      "apply",
      "key_parked",
    ]);
    expect(p.advances.map((a) => a.key)).toEqual(["b"]);
  });

  it("deduplicates records without a position by the event ids the chunk claimed", () => {
    const records = [
      rec("x", undefined, { eventId: "e1" }),
      rec("x", undefined, { eventId: "e1" }),
      rec("x", undefined, { eventId: "e2" }),
    ];
    expect(inboxEventIds(records, new Set())).toEqual(["e1", "e2"]);
    const p = plan(records, {}, { claimed: new Set(["e1"]) });
    expect(p.steps.map((s) => s.kind)).toEqual(["apply", "duplicate", "duplicate"]);
    expect(p.advances).toEqual([]);
  });

  it("dead-letters a record with a malformed position header without touching any watermark", () => {
    const bad = rec("a", 1);
    const broken = decodeRecord(
      "t",
      0,
      {
        offset: "99",
        key: Buffer.from("a"),
        value: bad.value,
        headers: { ...bad.envelope.headers, [Headers.keySequence]: "-1" },
        timestamp: 0,
      },
      definitions as never,
    );
    const p = plan([broken]);
    expect(p.steps[0]).toMatchObject({ kind: "dead_letter", reason: "invalid_headers" });
    expect(watermarkKeys([broken])).toEqual([]);
  });
});
