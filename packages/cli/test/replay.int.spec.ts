import { Headers } from "@eventlane/core";
import { createConsumer } from "@eventlane/consumer";
import { createRelay, type Relay } from "@eventlane/relay";
import { createTopics, deleteTopics, kafkaBrokers, readTopic, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VerifyReport } from "../src/index.ts";
import {
  counter,
  eventlane,
  itemEvent,
  type OutboxDb,
  outboxStatuses,
  relayOptions,
  setupOutboxDb,
} from "./support.ts";

let t: OutboxDb;
let relay: Relay;
const original = uniqueTopic("cli.replay.original");
const rebuild = uniqueTopic("cli.replay.rebuild");
const archive = uniqueTopic("cli.replay.archive");
const Item = itemEvent(original);
const { Counted, Counter } = counter(original);

interface ReplayJson {
  replayId: string;
  count: number;
  rows: {
    eventId: string;
    key: string;
    fromTopic: string | null;
    toTopic: string;
    position: number;
    outboxId: string | null;
  }[];
  notes: string[];
  unknownTopic: unknown[];
}

/** The original event ids of a stream, in version order. */
async function streamEventIds(stream: string): Promise<string[]> {
  const r = await t.pool.query<{ event_id: string }>(
    "SELECT event_id::text FROM eventlane.events WHERE stream_id = $1 ORDER BY version",
    [stream],
  );
  return r.rows.map((x) => x.event_id);
}

const keySequences = async () =>
  (await t.pool.query("SELECT topic, key, last_sequence::text FROM eventlane.key_sequences ORDER BY 1, 2")).rows;

beforeAll(async () => {
  t = await setupOutboxDb("el_cli_replay");
  await createTopics([
    { topic: original, partitions: 2 },
    { topic: rebuild, partitions: 2 },
    { topic: archive, partitions: 1 },
  ]);
  relay = createRelay(relayOptions(t.database.url, [original, rebuild, archive]));
  await relay.start();
  for (let n = 1; n <= 3; n++) await t.store.enqueue(t.db, Item, { key: "e-1", n });
  for (let n = 1; n <= 2; n++) await t.store.enqueue(t.db, Item, { key: "e-2", n });
  for (let by = 1; by <= 3; by++) await t.store.handle(t.db, Counter, "c-1", by);
  await waitFor("the originals published", async () => (await outboxStatuses(t.pool)).published === 8, 15_000);
});
afterAll(async () => {
  await relay?.stop();
  await deleteTopics([original, rebuild, archive]);
  await t?.close();
});

describe("eventlane replay", () => {
  it("replays a stream to another topic with its event ids, positions and a replay marker, no new sequence", async () => {
    const sequencesBefore = await keySequences();
    const r = await eventlane(["replay", "--stream", "c-1", "--to-topic", rebuild, "--json"], t.env);
    expect(r.code, r.stderr).toBe(0);
    const replay = r.json<ReplayJson>();
    const ids = await streamEventIds("c-1");
    expect(replay.count).toBe(3);
    expect(replay.rows.map((x) => [x.eventId, x.key, x.fromTopic, x.toTopic, x.position])).toEqual(
      ids.map((id, i) => [id, "c-1", original, rebuild, i + 1]),
    );
    const read = await readTopic(rebuild, (m) => m.length >= 3, { timeoutMs: 15_000 });
    expect(read.map((m) => m.key)).toEqual(["c-1", "c-1", "c-1"]);
    expect(read.map((m) => m.headers[Headers.eventId])).toEqual(ids);
    expect(read.map((m) => m.headers[Headers.aggregateVersion])).toEqual(["1", "2", "3"]);
    expect(read.map((m) => m.headers["eventlane-replay"])).toEqual([replay.replayId, replay.replayId, replay.replayId]);
    expect(read.map((m) => m.headers[Headers.eventType])).toEqual([Counted.type, Counted.type, Counted.type]);
    expect(await keySequences()).toEqual(sequencesBefore);

    const verified = await eventlane(["verify", "--topic", rebuild, "--json"], t.env);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.json<VerifyReport>()).toMatchObject({ ok: true, present: 3, replayedMessages: 3 });
  });

  it("needs --to-original-topic to replay to the original topic, where an Eventlane consumer skips the replays", async () => {
    const refused = await eventlane(["replay", "--key", "e-1", "--to-topic", original], t.env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--to-original-topic");

    const applied: string[] = [];
    const consumer = createConsumer({
      kafka: { brokers: kafkaBrokers },
      db: t.db,
      groupId: `cli-replay-${original}`,
      schema: "cli_replay_inbox",
      events: [Item, Counted] as const,
      maxWaitTimeMs: 100,
      handlers: {
        "item.recorded": async (_e, { eventId }) => {
          applied.push(eventId);
        },
        "counter.counted": async (_e, { eventId }) => {
          applied.push(eventId);
        },
      },
    });
    const migrated = await eventlane(["migrate", "--consumer", "cli_replay_inbox"], t.env);
    expect(migrated.code, migrated.stderr).toBe(0);
    consumer.on("error", () => undefined);
    await consumer.start();
    try {
      await waitFor("the originals applied", () => applied.length >= 8, 20_000);
      const r = await eventlane(["replay", "--key", "e-1", "--to-original-topic", "--json"], t.env);
      expect(r.code, r.stderr).toBe(0);
      const replay = r.json<ReplayJson>();
      expect(replay.rows.map((x) => [x.toTopic, x.position])).toEqual([
        [original, 1],
        [original, 2],
        [original, 3],
      ]);
      await waitFor("the replays seen as duplicates", () => consumer.stats().duplicates >= 3, 20_000);
      expect(applied).toHaveLength(8);

      const verified = await eventlane(["verify", "--topic", original, "--json"], t.env);
      expect(verified.code, verified.stderr).toBe(0);
      expect(verified.json<VerifyReport>()).toMatchObject({ ok: true, present: 11, replayedMessages: 3 });
    } finally {
      await consumer.stop();
    }
  });

  it("says which enqueued events are gone, and replays event-sourced ones from the events table", async () => {
    // What retention does: the published rows of e-2's first event and all of c-1's are removed.
    await t.pool.query(`CREATE TABLE eventlane.removed AS SELECT * FROM eventlane.outbox
                         WHERE NOT (headers ? 'eventlane-replay') AND ((key = 'e-2' AND key_sequence = 1) OR key = 'c-1')`);
    await t.pool.query("DELETE FROM eventlane.outbox o USING eventlane.removed r WHERE o.id = r.id");
    try {
      const rowsBefore = await outboxStatuses(t.pool);
      const dry = await eventlane(["replay", "--key", "e-2", "--to-topic", archive, "--dry-run", "--json"], t.env);
      expect(dry.code, dry.stderr).toBe(0);
      const planned = dry.json<ReplayJson>();
      expect(planned.rows.map((x) => x.position)).toEqual([2]);
      expect(planned.notes).toContainEqual(
        `key "e-2" on topic ${original}: enqueued events with sequences 1 to 1 are no longer in the outbox (retention removed them) and cannot be replayed`,
      );
      expect(await outboxStatuses(t.pool)).toEqual(rowsBefore);

      const unknown = await eventlane(["replay", "--stream", "c-1", "--to-original-topic", "--json"], t.env);
      expect(unknown.code).toBe(1);
      expect(unknown.json<ReplayJson>().unknownTopic).toHaveLength(3);
      const noTopic = await eventlane(["replay", "--stream", "c-1", "--to-topic", "cli.no-such-topic"], t.env);
      expect(noTopic.code).toBe(3);
      expect(noTopic.stderr).toContain('topic "cli.no-such-topic" does not exist');
      expect(await outboxStatuses(t.pool)).toEqual(rowsBefore);

      const r = await eventlane(["replay", "--stream", "c-1", "--to-topic", archive, "--json"], t.env);
      expect(r.code, r.stderr).toBe(0);
      const replay = r.json<ReplayJson>();
      expect(replay.rows.map((x) => [x.fromTopic, x.position])).toEqual([
        [null, 1],
        [null, 2],
        [null, 3],
      ]);
      const read = await readTopic(archive, (m) => m.length >= 3, { timeoutMs: 15_000 });
      expect(read.map((m) => m.headers[Headers.eventId])).toEqual(await streamEventIds("c-1"));
      expect(read.map((m) => m.headers[Headers.aggregateVersion])).toEqual(["1", "2", "3"]);
      expect(read.map((m) => JSON.parse(m.value!).by)).toEqual([1, 2, 3]);
    } finally {
      await t.pool.query("INSERT INTO eventlane.outbox OVERRIDING SYSTEM VALUE SELECT * FROM eventlane.removed");
      await t.pool.query("DROP TABLE eventlane.removed");
    }
  });
});
