// Write-path cost of the outbox, with durable settings (fsync and synchronous_commit on), 1 KiB
// payloads and uniformly spread keys: a business insert alone, the same insert plus `enqueue`, and an
// event-sourced append of the same event (alone: the event is the state), at 1, 8 and 32 clients,
// with and without the NOTIFY. Throughputs are reported as ratios to the plain insert measured in the
// same round, rounds interleave the variants, and the median round is kept.
import { randomBytes } from "node:crypto";
import { Schema } from "effect";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { createEventStore, defineAggregate, defineEvent, migrateToLatest, type EventStore } from "@eventlane/core";
import { createTestDatabase } from "@eventlane/test-kit";
import { progress, writeBarChart } from "./lib/chart.ts";

const BookingConfirmed = defineEvent({
  type: "booking_confirmed",
  schema: Schema.Struct({ bookingId: Schema.String, hotelId: Schema.String, note: Schema.String }),
  route: { topic: "bench.bookings", key: (e) => e.bookingId },
});
const Booking = defineAggregate({
  type: "booking",
  events: [BookingConfirmed],
  initialState: () => ({}),
  evolve: (s) => s,
  decide: () => [],
});

interface Tables {
  bookings: { id: string; hotel_id: string; note: string };
}

type Variant = "plain" | "enqueue" | "enqueue+notify" | "es-append" | "es-append+notify";
const VARIANTS: readonly Variant[] = ["plain", "enqueue", "es-append", "enqueue+notify", "es-append+notify"];

const KEYS = 10_000;
// A 1 KiB payload: the note plus the ids serialise to ~1024 bytes of JSON.
const note = randomBytes(490).toString("hex");

function op(
  variant: Variant,
  stores: { quiet: EventStore; loud: EventStore },
  db: Kysely<Tables>,
  seq: number,
): Promise<unknown> {
  const key = `b-${Math.floor(Math.random() * KEYS)}`;
  const id = `${key}-${seq}-${Math.random().toString(36).slice(2, 8)}`;
  const data = { bookingId: key, hotelId: "h-1", note };
  switch (variant) {
    case "plain":
      return db
        .transaction()
        .execute((trx) => trx.insertInto("bookings").values({ id, hotel_id: "h-1", note }).execute());
    case "enqueue":
    case "enqueue+notify": {
      const store = variant === "enqueue" ? stores.quiet : stores.loud;
      return db.transaction().execute(async (trx) => {
        await trx.insertInto("bookings").values({ id, hotel_id: "h-1", note }).execute();
        await store.enqueue(trx, BookingConfirmed, data);
      });
    }
    case "es-append":
    case "es-append+notify": {
      const store = variant === "es-append" ? stores.quiet : stores.loud;
      return store.appendToStream(db, Booking, key, [BookingConfirmed.make(data)], { expectedVersion: "any" });
    }
  }
}

async function measure(
  variant: Variant,
  clients: number,
  seconds: number,
  db: Kysely<Tables>,
  stores: { quiet: EventStore; loud: EventStore },
) {
  let done = 0;
  let seq = 0;
  const deadline = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < deadline) {
        await op(variant, stores, db, seq++);
        done++;
      }
    }),
  );
  return done / seconds;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export async function main(args: string[]) {
  const seconds = Number(args.find((a) => a.startsWith("--seconds="))?.split("=")[1] ?? 4);
  const rounds = Number(args.find((a) => a.startsWith("--rounds="))?.split("=")[1] ?? 3);
  const clientCounts = [1, 8, 32];
  const database = await createTestDatabase("el_bench_write");
  const pool = new pg.Pool({ connectionString: database.url, max: 34 });
  pool.on("error", () => undefined);
  pool.on("connect", (c) => {
    void c.query("SET synchronous_commit = on");
  });
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }) });
  try {
    await migrateToLatest(db);
    await db.schema
      .createTable("bookings")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("hotel_id", "text", (c) => c.notNull())
      .addColumn("note", "text", (c) => c.notNull())
      .execute();
    const settings = await sql<{
      fsync: string;
      sc: string;
    }>`SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS sc`.execute(db);
    const durable = settings.rows[0];
    progress(`durability: fsync=${durable?.fsync} synchronous_commit=${durable?.sc}`);
    const stores = { quiet: createEventStore({ notify: false }), loud: createEventStore({ notify: true }) };
    const tps: Record<string, Record<Variant, number[]>> = {};
    const ratios: Record<string, Record<Variant, number[]>> = {};
    const total = clientCounts.length * rounds * VARIANTS.length;
    let step = 0;
    for (const clients of clientCounts) {
      tps[clients] = { plain: [], enqueue: [], "enqueue+notify": [], "es-append": [], "es-append+notify": [] };
      ratios[clients] = { plain: [], enqueue: [], "enqueue+notify": [], "es-append": [], "es-append+notify": [] };
      await measure("plain", clients, 1, db, stores); // warm-up
      for (let round = 0; round < rounds; round++) {
        const roundTps = {} as Record<Variant, number>;
        for (const variant of VARIANTS) {
          await sql`TRUNCATE bookings, eventlane.outbox, eventlane.key_sequences, eventlane.events, eventlane.streams`.execute(
            db,
          );
          await sql`CHECKPOINT`.execute(db);
          roundTps[variant] = await measure(variant, clients, seconds, db, stores);
          tps[clients]![variant].push(roundTps[variant]);
          step++;
          progress(
            `[${step}/${total}] clients=${clients} round=${round + 1} ${variant}: ${roundTps[variant].toFixed(0)} tx/s`,
          );
        }
        for (const variant of VARIANTS) ratios[clients]![variant].push(roundTps[variant] / roundTps.plain);
      }
    }
    const summary = clientCounts.map((clients) => {
      const row: Record<string, number> = { clients };
      for (const v of VARIANTS) {
        row[`${v}_tps`] = Math.round(median(tps[clients]![v]));
        if (v !== "plain") row[`${v}_ratio`] = Number(median(ratios[clients]![v]).toFixed(3));
      }
      return row;
    });
    for (const row of summary) progress(JSON.stringify(row));
    const chart = writeBarChart(
      "write-path.svg",
      "Write path: throughput as a ratio to the plain insert (median of rounds)",
      "ratio to plain insert",
      summary.map((row) => ({
        label: `${row.clients} client${row.clients === 1 ? "" : "s"}`,
        bars: VARIANTS.filter((v) => v !== "plain").map((v) => ({ name: v, value: row[`${v}_ratio`]! })),
      })),
      0.85,
    );
    progress(`chart: ${chart}`);
    const at8 = summary.find((r) => r.clients === 8)!;
    return {
      benchmark: "write-path",
      durable: { fsync: durable?.fsync, synchronous_commit: durable?.sc },
      payloadBytes: 1024,
      keys: KEYS,
      secondsPerCell: seconds,
      rounds,
      results: summary,
      target: {
        enqueueRatioAt8Clients: 0.85,
        measured: at8.enqueue_ratio,
        met: (at8.enqueue_ratio ?? 0) >= 0.85,
      },
      eventSourcedRatioAt8Clients: at8["es-append_ratio"],
      chart,
    };
  } finally {
    await db.destroy();
    await database.drop();
  }
}
