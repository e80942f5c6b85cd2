import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createTopics, deleteTopics, uniqueTopic, waitFor } from "@eventlane/test-kit";
import type { Producer } from "kafkajs";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ConsumerTestDb, connectedProducer, produce, record, setupConsumerDb } from "./fixtures/setup.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
let t: ConsumerTestDb;
let producer: Producer;
const topic = uniqueTopic("consumer.crash");

beforeAll(async () => {
  t = await setupConsumerDb("el_consumer_crash");
  producer = await connectedProducer();
  await createTopics([{ topic, partitions: 3 }]);
});
afterAll(async () => {
  await producer.disconnect();
  await deleteTopics([topic]);
  await t.close();
});

function startConsumer(
  groupId: string,
  killAfter: number,
): { child: ChildProcess; output: () => string; exited: Promise<string | null> } {
  const child = spawn(
    process.execPath,
    [
      "--conditions=eventlane-source",
      path.join(here, "fixtures/crashing-consumer.ts"),
      t.database.url,
      topic,
      groupId,
      String(killAfter),
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<string | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
  return { child, output: () => out, exited };
}

describe("crash between the database commit and the offset commit", () => {
  it("SIGKILL mid-way, restart: every event applied exactly once, the replayed ones skipped and counted", async () => {
    const keys = 12;
    const perKey = 10;
    const records = [];
    for (let n = 1; n <= perKey; n++) {
      for (let k = 0; k < keys; k++) {
        records.push(
          record({
            key: `room-${k}`,
            type: "room_booked",
            schemaVersion: 2,
            sequence: n,
            value: { roomId: `room-${k}`, guest: `${k}-${n}`, nights: 1 },
          }),
        );
      }
    }
    await produce(producer, topic, records);
    const groupId = `g-crash-${topic}`;

    // First run: dies by SIGKILL right after the 50th record's transaction committed, before its offset commit.
    const first = startConsumer(groupId, 50);
    expect(await first.exited).toBe("SIGKILL");
    const afterCrash = Number((await sql<{ n: string }>`SELECT count(*) AS n FROM applied`.execute(t.db)).rows[0]?.n);
    expect(afterCrash).toBeGreaterThanOrEqual(50);
    expect(afterCrash).toBeLessThan(keys * perKey);

    // Second run, same group: resumes from the committed offsets.
    const second = startConsumer(groupId, 0);
    try {
      await waitFor(
        "every record applied",
        async () =>
          Number(
            (await sql<{ n: string }>`SELECT count(DISTINCT event_id) AS n FROM applied`.execute(t.db)).rows[0]?.n,
          ) ===
          keys * perKey,
        60_000,
      );
      const counts = await sql<{
        event_id: string;
        n: string;
      }>`SELECT event_id, count(*) AS n FROM applied GROUP BY event_id HAVING count(*) > 1`.execute(t.db);
      expect(counts.rows).toEqual([]);
      // Per key, the guests arrive in sequence order, once each.
      const rows = await sql<{ key: string; guests: string[] }>`
        SELECT key, array_agg(detail ORDER BY id) AS guests FROM applied GROUP BY key`.execute(t.db);
      for (const row of rows.rows) {
        const k = row.key.slice("room-".length);
        expect(row.guests).toEqual(Array.from({ length: perKey }, (_, i) => `${k}-${i + 1}`));
      }
      // The record whose offset was never committed came again and was skipped: the replay was real.
      await waitFor("duplicate reported", () => second.output().includes("duplicate "), 10_000);
      const dup = await sql<{ d: string }>`SELECT sum(duplicates) AS d FROM eventlane_consumer.watermarks`.execute(
        t.db,
      );
      expect(Number(dup.rows[0]?.d)).toBeGreaterThanOrEqual(1);
    } finally {
      second.child.kill("SIGTERM");
      await second.exited;
    }
  }, 120_000);
});
