import { createTopics, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { type ConsumerOptions, consumerDeadLetters, createConsumer, type ReplayInfo } from "../src/index.ts";
import {
  appliedRows,
  CLIENTS,
  kafkaOptions,
  produce,
  record,
  roomEvents,
  fileServices,
  type TestDb,
} from "./fixtures/setup.ts";

const files = fileServices("el_consumer_replay");

const booked = (key: string, n: number, guest: string) =>
  record({ key, type: "room_booked", schemaVersion: 2, sequence: n, value: { roomId: key, guest, nights: 1 } });

type Defs = ReturnType<typeof roomEvents>;
type Extra = Partial<ConsumerOptions<TestDb, readonly [Defs["RoomBooked"]]>>;

describe.each(CLIENTS)("%s", (client) => {
  /** A consumer whose handler fails for guests in `failing` (a set the test changes to "fix" the handler). */
  async function scenario(name: string, records: ReturnType<typeof record>[], extra: Extra = {}) {
    const topic = uniqueTopic(`consumer.${client}.${name}`);
    files.topics.push(topic);
    await createTopics([{ topic, partitions: 1 }]);
    await produce(files.producer, topic, records);
    const { RoomBooked } = roomEvents(topic);
    const failing = new Set<string>();
    const replays: (ReplayInfo | null)[] = [];
    const consumer = createConsumer({
      kafka: kafkaOptions(client),
      db: files.t.db,
      groupId: `g-${topic}`,
      events: [RoomBooked] as const,
      maxWaitTimeMs: 100,
      replayPollMs: 100,
      handlerAttempts: 1,
      ...extra,
      handlers: {
        room_booked: async (event, { trx, eventId, key, replay }) => {
          if (failing.has(event.data.guest)) throw new Error(`no room for ${event.data.guest}`);
          if (replay !== null) replays.push(replay);
          await trx
            .insertInto("applied")
            .values({ event_id: eventId, key, event_type: event.type, detail: event.data.guest })
            .execute();
        },
      },
    });
    return { topic, consumer, failing, replays };
  }
  const guestsOf = async (key: string) =>
    (await appliedRows(files.t.db)).filter((r) => r.key === key).map((r) => r.detail);
  const watermark = async (key: string) =>
    Number(
      (
        await sql<{ p: string }>`SELECT position AS p FROM eventlane_consumer.watermarks WHERE key = ${key}`.execute(
          files.t.db,
        )
      ).rows[0]?.p,
    );

  it("replays a dead letter once, also when asked twice at once, and never moves the watermark back", async () => {
    const key = `${client}-rp-1`;
    const s = await scenario("replay", []);
    s.failing.add("bob");
    await produce(files.producer, s.topic, [booked(key, 1, "ann"), booked(key, 2, "bob"), booked(key, 3, "cy")]);
    await s.consumer.start();
    try {
      await waitFor(
        "2 applied, 1 dead letter",
        () => s.consumer.stats().applied === 2 && s.consumer.stats().deadLettered === 1,
      );
      const [letter] = await s.consumer.deadLetters.list({ key });
      expect(letter).toMatchObject({ reason: "handler_failed", status: "pending" });
      const id = letter?.id as string;
      // Still failing: the replay throws the handler's failure and the dead letter stays pending.
      await expect(s.consumer.deadLetters.replay(id, { actor: "ops:ann" })).rejects.toMatchObject({
        code: "EVENTLANE_HANDLER_FAILED",
      });
      expect(await s.consumer.deadLetters.get(id)).toMatchObject({ status: "pending" });
      s.failing.clear();
      const results = await Promise.all([
        s.consumer.deadLetters.replay(id, { actor: "ops:ann" }),
        s.consumer.deadLetters.replay(id, { actor: "ops:bo" }),
      ]);
      expect(results.map((r) => r.outcome).sort()).toEqual(["replayed", "unchanged"]);
      expect(await guestsOf(key)).toEqual(["ann", "cy", "bob"]);
      expect(s.replays).toEqual([expect.objectContaining({ deadLetterId: id, reason: "handler_failed" })]);
      expect(await watermark(key)).toBe(3);
      expect(await s.consumer.deadLetters.replay(id, { actor: "ops:ann" })).toMatchObject({
        outcome: "unchanged",
        status: "replayed",
      });
      const log = await sql<{ action: string }>`
        SELECT action FROM eventlane_consumer.dead_letter_actions WHERE dead_letter_id = ${id} ORDER BY id`.execute(
        files.t.db,
      );
      expect(log.rows.map((r) => r.action)).toEqual(["replay_failed", "replayed"]);
      await expect(s.consumer.deadLetters.replay("999999999", { actor: "x" })).rejects.toMatchObject({
        code: "EVENTLANE_DEAD_LETTER_NOT_FOUND",
      });
      await expect(s.consumer.deadLetters.replay(id, { actor: "" })).rejects.toMatchObject({
        code: "EVENTLANE_INVALID_OPTION",
      });
    } finally {
      await s.consumer.stop();
    }
  });

  it("applies a replay requested from outside (no handlers there) in the running consumer; skips are final", async () => {
    const key = `${client}-rq-1`;
    const s = await scenario("request", []);
    s.failing.add("dee").add("eve");
    await produce(files.producer, s.topic, [booked(key, 1, "dee"), booked(key, 2, "eve")]);
    await s.consumer.start();
    try {
      await waitFor("2 dead letters", () => s.consumer.stats().deadLettered === 2);
      s.failing.clear();
      const outside = consumerDeadLetters(files.t.db, { name: s.consumer.options.name });
      const [first, second] = await outside.list({ key });
      const requested = await outside.requestReplayWhere(
        { key, reason: "handler_failed", limit: 1 },
        { actor: "cli:ops" },
      );
      expect(requested).toEqual([{ id: first?.id, outcome: "replay_requested", status: "replay_requested" }]);
      expect(await outside.skip(second?.id as string, { actor: "cli:ops", detail: "guest cancelled" })).toMatchObject({
        outcome: "skipped",
      });
      await waitFor(
        "replayed by the running consumer",
        async () => (await outside.get(first?.id as string)).status === "replayed",
      );
      expect(await outside.get(first?.id as string)).toMatchObject({ requestedBy: "cli:ops", resolvedBy: "cli:ops" });
      expect(await guestsOf(key)).toEqual(["dee"]);
      expect(await s.consumer.deadLetters.replay(second?.id as string, { actor: "x" })).toMatchObject({
        outcome: "unchanged",
        status: "skipped",
      });
      expect(s.consumer.stats().replayed).toBe(1);
    } finally {
      await s.consumer.stop();
    }
  });

  it('with onDeadLetter "park_key" parks the key until its dead letters are replayed in order; other keys flow', async () => {
    const key = `${client}-pk-1`;
    const other = `${client}-pk-2`;
    const s = await scenario("park", [], { onDeadLetter: "park_key" });
    s.failing.add("fay");
    await produce(files.producer, s.topic, [
      booked(key, 1, "ed"),
      booked(key, 2, "fay"),
      booked(other, 1, "gus"),
      booked(key, 3, "hal"),
      booked(key, 4, "ivy"),
      booked(other, 2, "jo"),
    ]);
    await s.consumer.start();
    try {
      await waitFor("3 dead letters", () => s.consumer.stats().deadLettered === 3);
      expect(await guestsOf(other)).toEqual(["gus", "jo"]);
      expect(await guestsOf(key)).toEqual(["ed"]);
      const letters = await s.consumer.deadLetters.list({ key });
      expect(letters.map((l) => l.reason)).toEqual(["handler_failed", "key_parked", "key_parked"]);
      await expect(s.consumer.deadLetters.replay(letters[1]?.id as string, { actor: "ops" })).rejects.toMatchObject({
        code: "EVENTLANE_DEAD_LETTER_NOT_REPLAYABLE",
        reason: "older_unresolved",
      });
      s.failing.clear();
      const replayed = await s.consumer.deadLetters.replayWhere({ key }, { actor: "ops" });
      expect(replayed.map((r) => r.outcome)).toEqual(["replayed", "replayed", "replayed"]);
      expect(await guestsOf(key)).toEqual(["ed", "fay", "hal", "ivy"]);
      // Unparked: the next event of the key is applied as usual.
      await produce(files.producer, s.topic, [booked(key, 5, "kim")]);
      await waitFor("kim applied", async () => (await guestsOf(key)).length === 5);
      expect(s.consumer.stats().gaps).toBe(0);
    } finally {
      await s.consumer.stop();
    }
  });
});
