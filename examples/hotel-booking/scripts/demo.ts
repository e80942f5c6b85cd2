// The hotel-booking demo: migrates a fresh database, starts the API, the relay and the three
// consumers as child processes, books rooms over HTTP, and prints what each consumer did. Exits 0
// only when every consumer applied every booking exactly once.
//
//   node --conditions=eventlane-source examples/hotel-booking/scripts/demo.ts [--kill-relay] [--bookings N] [--keep]
//
// --kill-relay  the relay SIGKILLs itself right after Kafka acknowledged a batch and before marking
//               it published (half-way through the bookings); the demo restarts it, the batch is
//               sent again, and the consumers' duplicate counts show the replay.
// --keep        keep the demo's database and topic afterwards (they are dropped by default).
import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Kafka, logLevel } from "kafkajs";
import { sql } from "kysely";
import pg from "pg";
import { HOTELS, loadConfig } from "../src/config.ts";
import { CONSUMER_NAMES, CONSUMERS, type ConsumerName } from "../src/consumers/hotel-consumers.ts";
import { createDatabase } from "../src/database.ts";
import { ensureTopics, migrateHotel } from "../src/setup/setup.ts";

const { values: args } = parseArgs({
  options: {
    "kill-relay": { type: "boolean", default: false },
    bookings: { type: "string", default: "60" },
    keep: { type: "boolean", default: false },
  },
});
const killRelay = args["kill-relay"] === true;
const bookingCount = Number(args.bookings);
const here = path.dirname(fileURLToPath(import.meta.url));
const bin = (name: string) => path.join(here, "../src/bin", name);
const started = Date.now();
const log = (line: string) => process.stdout.write(`[demo +${((Date.now() - started) / 1000).toFixed(1)}s] ${line}\n`);

// --- a fresh database and topic for this run -----------------------------------------------------
const base = loadConfig();
const runId = Date.now().toString(36);
const adminUrl = new URL(base.databaseUrl);
adminUrl.pathname = "/postgres";
const dbName = `eventlane_hotel_demo_${runId}`;
const dbUrl = new URL(base.databaseUrl);
dbUrl.pathname = `/${dbName}`;
const topic = `hotel.bookings.demo-${runId}`;
const port = await freePort();
const env = {
  ...process.env,
  EVENTLANE_DATABASE_URL: dbUrl.toString(),
  EVENTLANE_KAFKA_BROKERS: base.brokers.join(","),
  HOTEL_BOOKINGS_TOPIC: topic,
  PORT: String(port),
  HOTEL_GROUP_SUFFIX: `-demo-${runId}`,
};

async function admin(statement: string) {
  const client = new pg.Client({ connectionString: adminUrl.toString() });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a !== null ? a.port : 0));
    });
  });
}

// --- child processes --------------------------------------------------------------------------------
interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  readonly output: string[];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}
const children = new Set<Child>();

function start(name: string, file: string, argv: string[] = [], extraEnv: Record<string, string> = {}): Child {
  const proc = spawn(process.execPath, ["--conditions=eventlane-source", "--no-warnings", bin(file), ...argv], {
    env: { ...env, ...extraEnv },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const onLine = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) {
      if (line.trim() === "") continue;
      output.push(line);
      log(`${name.padEnd(9)}| ${line}`);
    }
  };
  proc.stdout?.on("data", onLine);
  proc.stderr?.on("data", onLine);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on("exit", (code, signal) => resolve({ code, signal })),
  );
  const child = { name, process: proc, output, exited };
  children.add(child);
  void exited.then(() => children.delete(child));
  return child;
}

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (
    !(await Promise.resolve()
      .then(check)
      .catch(() => false))
  ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopAll() {
  for (const c of children) c.process.kill("SIGTERM");
  await Promise.all(
    [...children].map((c) =>
      Promise.race([c.exited, new Promise((r) => setTimeout(r, 10_000)).then(() => c.process.kill("SIGKILL"))]),
    ),
  );
}

// --- HTTP ---------------------------------------------------------------------------------------------
const api = `http://127.0.0.1:${port}`;
async function post(url: string, body: unknown) {
  const r = await fetch(api + url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}
async function outboxFromMetrics() {
  const text = await (await fetch(`${api}/metrics`)).text();
  const value = (name: string) =>
    text
      .split("\n")
      .filter((l) => l.startsWith(name))
      .reduce((s, l) => s + Number(l.trim().split(/\s+/).at(-1)), 0);
  return { pending: value("eventlane_outbox_pending_rows"), lagSeconds: value("eventlane_outbox_lag_seconds") };
}

// --- the run --------------------------------------------------------------------------------------------
const db = createDatabase(dbUrl.toString(), 4);
let ok = false;
try {
  log(`database ${dbName}, topic ${topic}${killRelay ? ", relay will be killed mid-way" : ""}`);
  await admin(`CREATE DATABASE "${dbName}"`);
  await migrateHotel(db);
  await ensureTopics(base.brokers, topic, base.bookingsPartitions);
  log("migrated (Eventlane, API tables, consumer inboxes) and created the topic");

  const apiChild = start("api", "api.ts");
  const relayEnv: Record<string, string> = killRelay
    ? { HOTEL_RELAY_CRASH_AFTER_ROWS: String(Math.floor(bookingCount / 2)) }
    : {};
  let relay = start("relay", "relay.ts", [], relayEnv);
  const consumers = Object.fromEntries(CONSUMER_NAMES.map((n) => [n, start(n, "consumer.ts", [n])])) as Record<
    ConsumerName,
    Child
  >;
  await waitUntil("the API to be ready", async () => (await fetch(`${api}/health/ready`)).status === 200);
  await waitUntil("the consumers to join their groups", () =>
    CONSUMER_NAMES.every((n) => consumers[n].output.some((l) => l.includes("consumer started"))),
  );
  void apiChild;

  const relayOutage: { outbox?: { pending: number; lagSeconds: number } } = {};
  const relayRestarted = killRelay
    ? relay.exited.then(async ({ signal }) => {
        log(`relay exited with ${signal}`);
        await new Promise((r) => setTimeout(r, 1_000));
        const outage = await outboxFromMetrics();
        relayOutage.outbox = outage;
        log(
          `restarting the relay (outbox after 1 s without a relay: ${outage.pending} pending, lag ${outage.lagSeconds.toFixed(2)} s)`,
        );
        relay = start("relay", "relay.ts");
        return signal;
      })
    : Promise.resolve(null);

  // Book rooms over HTTP, 8 at a time, both write styles.
  const bigHotels = HOTELS.filter((h) => h.hotelId !== "last-room-inn");
  const confirmed: { bookingId: string; hotelId: string; style: string }[] = [];
  for (let i = 0; i < bookingCount; i += 8) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(8, bookingCount - i) }, (_, j) => {
        const n = i + j;
        const hotel = bigHotels[n % bigHotels.length]!;
        const style = n % 3 === 2 ? "table" : "event-sourced";
        return post("/bookings", {
          bookingId: `demo-${n}`,
          hotelId: hotel.hotelId,
          guestEmail: `guest${n}@example.com`,
          nights: 1 + (n % 5),
          style,
        });
      }),
    );
    for (const r of batch) {
      if (r.status !== 201) throw new Error(`booking refused: ${r.status} ${JSON.stringify(r.body)}`);
      confirmed.push({
        bookingId: String(r.body.bookingId),
        hotelId: String(r.body.hotelId),
        style: String(r.body.style),
      });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const cancelled = ["demo-0", "demo-2", "demo-7", "demo-11"].filter((id) => confirmed.some((c) => c.bookingId === id));
  for (const id of cancelled) {
    const r = await post(`/bookings/${id}/cancel`, { reason: "plans changed" });
    if (r.status !== 200) throw new Error(`cancel refused: ${r.status} ${JSON.stringify(r.body)}`);
  }
  // Six guests race for the last two rooms of The Last Room Inn.
  const race = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      post("/bookings", {
        bookingId: `race-${i}`,
        hotelId: "last-room-inn",
        guestEmail: `race${i}@example.com`,
        nights: 1,
        style: i % 2 ? "table" : "event-sourced",
      }),
    ),
  );
  const won = race.filter((r) => r.status === 201);
  const refused = race.filter((r) => r.status === 409 && r.body.error === "no_rooms_left");
  for (const r of won)
    confirmed.push({ bookingId: String(r.body.bookingId), hotelId: "last-room-inn", style: String(r.body.style) });
  log(
    `booked ${confirmed.length} rooms, cancelled ${cancelled.length}; last room race: ${won.length} won, ${refused.length} refused with 409 no_rooms_left`,
  );

  const killedSignal = await relayRestarted;

  // Wait for every consumer to apply everything.
  const expectedMessages = confirmed.length + cancelled.length;
  const count = async (q: string) => Number((await sql<{ n: string }>`${sql.raw(q)}`.execute(db)).rows[0]?.n ?? 0);
  await waitUntil(
    "all three consumers to catch up",
    async () =>
      (await count("SELECT count(*) AS n FROM email.sent_emails")) >= expectedMessages &&
      (await count("SELECT coalesce(sum(bookings + cancellations), 0) AS n FROM analytics.hotel_bookings")) >=
        expectedMessages &&
      (await count("SELECT sum(rooms_total - rooms_left) AS n FROM inventory.rooms")) >=
        confirmed.length - cancelled.length &&
      (await outboxFromMetrics()).pending === 0,
    60_000,
  );
  await new Promise((r) => setTimeout(r, 1_000)); // anything extra (a duplicate applied twice) would show now
  const outbox = await outboxFromMetrics();

  // --- check exactly once -----------------------------------------------------------------------------
  const problems: string[] = [];
  const mails = await db.selectFrom("email.sent_emails").select(["booking_id", "kind"]).execute();
  const perBooking = new Map<string, number>();
  for (const m of mails.filter((x) => x.kind === "confirmation"))
    perBooking.set(m.booking_id, (perBooking.get(m.booking_id) ?? 0) + 1);
  for (const c of confirmed)
    if (perBooking.get(c.bookingId) !== 1)
      problems.push(`email: ${perBooking.get(c.bookingId) ?? 0} confirmations for ${c.bookingId}`);
  if (perBooking.size !== confirmed.length)
    problems.push(`email: confirmations for ${perBooking.size} bookings, expected ${confirmed.length}`);
  const cancellations = mails
    .filter((x) => x.kind === "cancellation")
    .map((m) => m.booking_id)
    .sort();
  if (JSON.stringify(cancellations) !== JSON.stringify([...cancelled].sort()))
    problems.push(`email: cancellations ${cancellations.join(",")}`);

  const apiHotels = await db.selectFrom("hotel.hotels").selectAll().orderBy("hotel_id").execute();
  const inventory = await db.selectFrom("inventory.rooms").selectAll().orderBy("hotel_id").execute();
  const analytics = await db.selectFrom("analytics.hotel_bookings").selectAll().orderBy("hotel_id").execute();
  for (const h of apiHotels) {
    const inv = inventory.find((i) => i.hotel_id === h.hotel_id);
    if (inv?.rooms_left !== h.rooms_available)
      problems.push(`inventory: ${h.hotel_id} has ${inv?.rooms_left} left, the API says ${h.rooms_available}`);
    const booked = confirmed.filter((c) => c.hotelId === h.hotel_id).length;
    const cancelledHere = cancelled.filter(
      (id) => confirmed.find((c) => c.bookingId === id)?.hotelId === h.hotel_id,
    ).length;
    const a = analytics.find((x) => x.hotel_id === h.hotel_id);
    if ((a?.bookings ?? 0) !== booked || (a?.cancellations ?? 0) !== cancelledHere) {
      problems.push(
        `analytics: ${h.hotel_id} counted ${a?.bookings ?? 0} bookings / ${a?.cancellations ?? 0} cancellations, expected ${booked} / ${cancelledHere}`,
      );
    }
  }
  const durable: Record<ConsumerName, { duplicates: number; gaps: number; deadLetters: number }> = {} as never;
  for (const n of CONSUMER_NAMES) {
    const s = CONSUMERS[n].inboxSchema;
    const r = await sql<{ d: string; g: string; dl: string }>`
      SELECT (SELECT coalesce(sum(duplicates), 0) FROM ${sql.table(`${s}.watermarks`)}) AS d,
             (SELECT coalesce(sum(gaps), 0) FROM ${sql.table(`${s}.watermarks`)}) AS g,
             (SELECT count(*) FROM ${sql.table(`${s}.dead_letters`)}) AS dl`.execute(db);
    durable[n] = { duplicates: Number(r.rows[0]?.d), gaps: Number(r.rows[0]?.g), deadLetters: Number(r.rows[0]?.dl) };
    if (durable[n].deadLetters > 0) problems.push(`${n}: ${durable[n].deadLetters} dead letters`);
    if (killRelay && durable[n].duplicates === 0)
      problems.push(`${n}: no duplicates although the relay was killed after a send`);
  }
  if (won.length !== 2 || refused.length !== 4)
    problems.push(`last room race: ${won.length} won, ${refused.length} refused`);
  if (killRelay && killedSignal !== "SIGKILL") problems.push(`the relay was not killed by SIGKILL (${killedSignal})`);

  // Stop the consumers gracefully to collect what they received.
  await stopAll();
  const received = (n: ConsumerName) =>
    consumers[n].output.find((l) => l.startsWith(`${n}: received`)) ?? `${n}: (no stats)`;

  const styles = {
    es: confirmed.filter((c) => c.style === "event-sourced").length,
    table: confirmed.filter((c) => c.style === "table").length,
  };
  const line = (s = "") => process.stdout.write(`${s}\n`);
  line();
  line("=== Eventlane hotel-booking demo ===");
  line(
    `bookings    ${confirmed.length} confirmed over HTTP (${styles.es} event-sourced Booking aggregate, ${styles.table} plain table + enqueue), ${cancelled.length} cancelled`,
  );
  line(
    `last room   6 concurrent guests for 2 rooms: ${won.length} booked, ${refused.length} refused with 409 no_rooms_left (nothing written for them)`,
  );
  line(
    `relay       ${killRelay ? `SIGKILLed after Kafka acked a batch and before marking it published, then restarted (outbox while down: ${relayOutage.outbox?.pending ?? "?"} pending, lag ${relayOutage.outbox?.lagSeconds.toFixed(2) ?? "?"} s)` : "ran throughout"}`,
  );
  line(
    `email       ${mails.length - cancellations.length} confirmation emails, ${cancellations.length} cancellation emails recorded`,
  );
  line(`inventory   rooms left: ${inventory.map((i) => `${i.hotel_id} ${i.rooms_left}/${i.rooms_total}`).join(", ")}`);
  line(
    `analytics   bookings per hotel: ${analytics.map((a) => `${a.hotel_id} ${a.bookings} (${a.nights} nights, ${a.cancellations} cancelled)`).join(", ")}`,
  );
  line(
    `outbox      from /metrics: eventlane_outbox_pending_rows ${outbox.pending}, eventlane_outbox_lag_seconds ${outbox.lagSeconds}`,
  );
  line("duplicates  received and skipped (durable, from each consumer's watermarks):");
  for (const n of CONSUMER_NAMES)
    line(
      `            ${n.padEnd(10)} ${durable[n].duplicates} skipped, ${durable[n].gaps} gaps, ${durable[n].deadLetters} dead letters   [${received(n)}]`,
    );
  if (problems.length === 0) {
    line(
      `RESULT      OK: all three consumers applied all ${expectedMessages} booking events exactly once (${((Date.now() - started) / 1000).toFixed(1)} s)`,
    );
    ok = true;
  } else {
    line("RESULT      FAILED:");
    for (const p of problems) line(`            - ${p}`);
  }
} catch (error) {
  process.stdout.write(`demo failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
} finally {
  await stopAll();
  await db.destroy();
  if (!args.keep) {
    await admin(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
    const kafkaAdmin = new Kafka({
      clientId: "hotel-demo",
      brokers: [...base.brokers],
      logLevel: logLevel.NOTHING,
    }).admin();
    await kafkaAdmin
      .connect()
      .then(() => kafkaAdmin.deleteTopics({ topics: [topic] }))
      .catch(() => undefined)
      .finally(() => kafkaAdmin.disconnect());
  } else {
    process.stdout.write(`kept database ${dbName} and topic ${topic}\n`);
  }
}
process.exit(ok ? 0 : 1);
