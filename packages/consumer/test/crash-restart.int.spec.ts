import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createTopics, uniqueTopic, waitFor } from "@eventlane/test-kit";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { CLIENTS, fileServices, produce, record } from "./fixtures/setup.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
const files = fileServices("el_consumer_crash");

function startConsumer(args: readonly string[]): {
  child: ChildProcess;
  output: () => string;
  exited: Promise<string | null>;
} {
  const child = spawn(
    process.execPath,
    ["--conditions=eventlane-source", path.join(here, "fixtures/crashing-consumer.ts"), files.t.database.url, ...args],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<string | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
  return { child, output: () => out, exited };
}

const count = async (q: ReturnType<typeof sql<{ n: string }>>) => Number((await q.execute(files.t.db)).rows[0]?.n);

describe.each(CLIENTS)("%s: SIGKILL mid-chunk and between the database commit and the offset commit", (client) => {
  it("restarted after several kills at random points: every event applied exactly once, in per-key order", async () => {
    const topic = uniqueTopic(`consumer.crash.${client}`);
    files.topics.push(topic);
    await createTopics([{ topic, partitions: 3 }]);
    const keys = 12;
    const perKey = 40;
    const total = keys * perKey;
    const prefix = `${client}-room-`;
    const records = [];
    for (let n = 1; n <= perKey; n++) {
      for (let k = 0; k < keys; k++) {
        records.push(
          record({
            key: `${prefix}${k}`,
            type: "room_booked",
            schemaVersion: 2,
            sequence: n,
            value: { roomId: `${prefix}${k}`, guest: `${k}-${n}`, nights: 1 },
          }),
        );
      }
    }
    await produce(files.producer, topic, records);
    const groupId = `g-crash-${topic}`;
    const applied = () => count(sql`SELECT count(*) AS n FROM applied WHERE key LIKE ${`${prefix}%`}`);

    // Four runs die by SIGKILL at a random point: inside a handler (its chunk's transaction open) or
    // right after a chunk committed and before its offset commit.
    const kills: string[] = [];
    for (let run = 0; run < 4; run++) {
      const where = run % 2 === 0 ? "handler" : "applied";
      const after = 5 + Math.floor(Math.random() * 60);
      kills.push(`${where}@${after}`);
      const p = startConsumer([topic, groupId, client, String(after), where]);
      expect(await p.exited).toBe("SIGKILL");
    }
    expect(await applied()).toBeLessThan(total);

    const last = startConsumer([topic, groupId, client, "0", "handler"]);
    try {
      await waitFor(
        `every record applied (kills: ${kills.join(", ")})`,
        async () =>
          (await count(sql`SELECT count(DISTINCT event_id) AS n FROM applied WHERE key LIKE ${`${prefix}%`}`)) ===
          total,
        60_000,
      );
      // Exactly once: no event id twice, although the chunks of the killed runs were delivered again.
      expect(await applied()).toBe(total);
      const rows = await sql<{ key: string; guests: string[] }>`
        SELECT key, array_agg(detail ORDER BY id) AS guests FROM applied WHERE key LIKE ${`${prefix}%`} GROUP BY key`.execute(
        files.t.db,
      );
      expect(rows.rows).toHaveLength(keys);
      for (const row of rows.rows) {
        const k = row.key.slice(prefix.length);
        expect(row.guests).toEqual(Array.from({ length: perKey }, (_, i) => `${k}-${i + 1}`));
      }
      const dup = await count(
        sql`SELECT coalesce(sum(duplicates), 0) AS n FROM eventlane_consumer.watermarks WHERE key LIKE ${`${prefix}%`}`,
      );
      // The runs killed after a commit left a chunk whose offset was never committed: it came again and was skipped.
      expect(dup).toBeGreaterThanOrEqual(1);
    } finally {
      last.child.kill("SIGTERM");
      await last.exited;
    }
  }, 180_000);
});
