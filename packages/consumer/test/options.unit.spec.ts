import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import {
  CONSUMER_DEFAULTS,
  type ConsumerOptions,
  consumerDdl,
  createConsumer,
  resolveConsumerOptions,
} from "../src/index.ts";
import { roomEvents } from "./fixtures/setup.ts";

// Never connected: option checks happen before any I/O.
const db = new Kysely<unknown>({
  dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: "postgres://nowhere/x" }) }),
});
const kafka = { brokers: ["127.0.0.1:9092"] };
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
      batchSize: 500,
      onDeadLetter: "continue",
      groupProtocol: "classic",
      sessionTimeoutMs: 30_000,
      heartbeatIntervalMs: 3_000,
    });
    expect(r.kafka).toMatchObject({ client: "kafkajs", brokers: ["127.0.0.1:9092"], clientId: "eventlane-consumer" });
    expect(r.names.watermarks).toBe('"eventlane_consumer"."watermarks"');
    expect(Object.isFrozen(r)).toBe(true);
  });

  const bad: ReadonlyArray<[string, Record<string, unknown>, string, string]> = [
    ["unknown option", { groupID: "x" }, "EVENTLANE_INVALID_OPTION", "groupID"],
    ["missing groupId", { groupId: undefined }, "EVENTLANE_INVALID_OPTION", "groupId"],
    ["empty groupId", { groupId: "" }, "EVENTLANE_INVALID_OPTION", "groupId"],
    ["no brokers", { kafka: {} }, "EVENTLANE_INVALID_OPTION", "kafka.brokers"],
    [
      "a kafkajs instance instead of options",
      { kafka: { consumer: () => 1, admin: () => 1 } },
      "EVENTLANE_INVALID_OPTION",
      "kafka",
    ],
    ["a broker without a port", { kafka: { brokers: ["localhost"] } }, "EVENTLANE_INVALID_OPTION", "kafka.brokers"],
    ["unknown kafka option", { kafka: { brokers: ["h:1"], acks: 1 } }, "EVENTLANE_INVALID_OPTION", "kafka.acks"],
    ["unknown client", { kafka: { brokers: ["h:1"], client: "rdkafka" } }, "EVENTLANE_INVALID_OPTION", "kafka.client"],
    [
      "the consumer group protocol with kafkajs",
      { kafka: { brokers: ["h:1"], groupProtocol: "consumer" } },
      "EVENTLANE_INVALID_OPTION",
      "kafka.groupProtocol",
    ],
    [
      "a session timeout under the consumer group protocol",
      { kafka: { brokers: ["h:1"], client: "platformatic", groupProtocol: "consumer" }, sessionTimeoutMs: 10_000 },
      "EVENTLANE_INVALID_OPTION",
      "sessionTimeoutMs",
    ],
    [
      "a heartbeat interval under the consumer group protocol",
      { kafka: { brokers: ["h:1"], client: "platformatic", groupProtocol: "consumer" }, heartbeatIntervalMs: 1_000 },
      "EVENTLANE_INVALID_OPTION",
      "heartbeatIntervalMs",
    ],
    [
      "a heartbeat over a third of the session",
      { sessionTimeoutMs: 9_000, heartbeatIntervalMs: 3_001 },
      "EVENTLANE_INVALID_OPTION",
      "heartbeatIntervalMs",
    ],
    ["zero batch size", { batchSize: 0 }, "EVENTLANE_INVALID_OPTION", "batchSize"],
    ["bad dead-letter policy", { onDeadLetter: "stop" }, "EVENTLANE_INVALID_OPTION", "onDeadLetter"],
    [
      "a type with a handler and a batch handler",
      { handlers: { room_booked: () => {} }, batchHandlers: { room_booked: () => {} } },
      "EVENTLANE_INVALID_OPTION",
      "batchHandlers.room_booked",
    ],
    [
      "handleBatch with handlers",
      { handlers: { room_booked: () => {} }, handleBatch: () => {} },
      "EVENTLANE_INVALID_OPTION",
      "handleBatch",
    ],
    [
      "batch handler for an unknown type",
      { batchHandlers: { room_cleaned: () => {} } },
      "EVENTLANE_INVALID_OPTION",
      "batchHandlers",
    ],
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

  it("keeps TLS and SASL secrets out of the resolved options' printed form", () => {
    const r = resolveConsumerOptions({
      ...base,
      kafka: { brokers: ["h:1"], sasl: { mechanism: "plain", username: "u", password: "hunter2" } },
    });
    expect(JSON.stringify(r.kafka)).not.toContain("hunter2");
    expect(String(r.kafka.sasl)).not.toContain("hunter2");
  });

  it("takes no session settings under the consumer group protocol", () => {
    const r = resolveConsumerOptions({
      ...base,
      kafka: { brokers: ["h:1"], client: "platformatic", groupProtocol: "consumer" },
    });
    expect(r).toMatchObject({ groupProtocol: "consumer", sessionTimeoutMs: null, heartbeatIntervalMs: null });
  });

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

describe("the README's option table", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const rows = new Map(
    [...readme.matchAll(/^\| `([\w.]+)` +\| ([^|]+?) +\|/gm)].map((m) => [m[1] as string, (m[2] as string).trim()]),
  );
  it("gives every default as CONSUMER_DEFAULTS has it", () => {
    for (const [key, value] of Object.entries(CONSUMER_DEFAULTS)) {
      const cell = rows.get(key) ?? rows.get(`kafka.${key}`);
      expect(cell, `README row for ${key}`).toBeDefined();
      expect(cell).toBe(typeof value === "string" ? `\`"${value}"\`` : `\`${value}\``);
    }
  });
  it("documents every option the consumer takes", () => {
    for (const key of [
      "kafka",
      "db",
      "groupId",
      "events",
      "handlers",
      "batchHandlers",
      "handleBatch",
      "topics",
      "name",
    ]) {
      expect(
        [...rows.keys()].some((k) => k === key || k.startsWith(`${key}.`)),
        key,
      ).toBe(true);
    }
  });
});
