import { testKafka } from "@eventlane/test-kit";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { type ConsumerOptions, consumerDdl, createConsumer, resolveConsumerOptions } from "../src/index.ts";
import { roomEvents } from "./fixtures/setup.ts";

// Never connected: option checks happen before any I/O.
const db = new Kysely<unknown>({
  dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: "postgres://nowhere/x" }) }),
});
const kafka = testKafka();
const { RoomBooked, RoomReleased } = roomEvents("rooms");
const base = { kafka, db, groupId: "g", events: [RoomBooked, RoomReleased] as const, handlers: {} };

afterAll(() => db.destroy());

const codeOf = (fn: () => unknown): { code: unknown; option: unknown } => {
  try {
    fn();
  } catch (error) {
    return { code: (error as { code?: unknown }).code, option: (error as { option?: unknown }).option };
  }
  throw new Error("expected a throw");
};

describe("consumer options", () => {
  it("resolves defaults once and freezes them", () => {
    const r = resolveConsumerOptions(base);
    expect(r).toMatchObject({
      name: "g",
      topics: ["rooms"],
      isolation: "read_committed",
      onGap: "continue",
      fromBeginning: true,
      handlerAttempts: 3,
      partitionsConsumedConcurrently: 1,
    });
    expect(r.names.watermarks).toBe('"eventlane_consumer"."watermarks"');
    expect(Object.isFrozen(r)).toBe(true);
  });

  const bad: ReadonlyArray<[string, Record<string, unknown>, string, string]> = [
    ["unknown option", { groupID: "x" }, "EVENTLANE_INVALID_OPTION", "groupID"],
    ["missing groupId", { groupId: undefined }, "EVENTLANE_INVALID_OPTION", "groupId"],
    ["empty groupId", { groupId: "" }, "EVENTLANE_INVALID_OPTION", "groupId"],
    ["not a kafka client", { kafka: {} }, "EVENTLANE_INVALID_OPTION", "kafka"],
    ["not a Kysely", { db: { query: () => 1 } }, "EVENTLANE_INVALID_OPTION", "db"],
    ["no events", { events: [] }, "EVENTLANE_INVALID_OPTION", "events"],
    ["same event twice", { events: [RoomBooked, RoomBooked] }, "EVENTLANE_INVALID_OPTION", "events"],
    ["handler for an unknown type", { handlers: { room_cleaned: () => {} } }, "EVENTLANE_INVALID_OPTION", "handlers"],
    ["handler not a function", { handlers: { room_booked: 1 } }, "EVENTLANE_INVALID_OPTION", "handlers.room_booked"],
    ["bad isolation", { isolation: "serializable" }, "EVENTLANE_INVALID_OPTION", "isolation"],
    ["bad gap policy", { onGap: "wait" }, "EVENTLANE_INVALID_OPTION", "onGap"],
    ["zero handler attempts", { handlerAttempts: 0 }, "EVENTLANE_INVALID_OPTION", "handlerAttempts"],
    [
      "fractional concurrency",
      { partitionsConsumedConcurrently: 1.5 },
      "EVENTLANE_INVALID_OPTION",
      "partitionsConsumedConcurrently",
    ],
    ["session timeout too short", { sessionTimeoutMs: 100 }, "EVENTLANE_INVALID_OPTION", "sessionTimeoutMs"],
    ["empty topics", { topics: [] }, "EVENTLANE_INVALID_OPTION", "topics"],
    ["schema that would inject SQL", { schema: 'x"; DROP TABLE y; --' }, "EVENTLANE_INVALID_IDENTIFIER", "schema"],
    ["upper-case schema", { schema: "Consumer" }, "EVENTLANE_INVALID_IDENTIFIER", "schema"],
  ];
  for (const [what, patch, code, option] of bad) {
    it(`rejects ${what} with ${code} naming "${option}"`, () => {
      const options = { ...base, ...patch } as unknown as ConsumerOptions<unknown, typeof base.events>;
      expect(codeOf(() => createConsumer(options))).toEqual({ code, option });
    });
  }

  it("refuses start() twice with a typed state error", async () => {
    const consumer = createConsumer(base);
    await consumer.stop();
    await expect(consumer.start()).rejects.toMatchObject({ code: "EVENTLANE_CONSUMER_STATE" });
  });

  it("exports the DDL in the configured schema", () => {
    const ddl = consumerDdl({ schema: "inbox_x" });
    expect(ddl).toContain('CREATE TABLE "inbox_x"."watermarks"');
    expect(ddl).toContain('CREATE TABLE "inbox_x"."dead_letters"');
    expect(() => consumerDdl({ schema: "1bad" })).toThrow(
      expect.objectContaining({ code: "EVENTLANE_INVALID_IDENTIFIER" }),
    );
  });
});
