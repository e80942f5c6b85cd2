import { execFile } from "node:child_process";
import { EventEmitter } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { migrateToLatest } from "@eventlane/core";
import { createTestDatabase, type TestDatabase } from "@eventlane/test-kit";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import type {
  EventlaneRelayEventName,
  EventlaneRelayEvents,
  EventlaneRelayHandle,
  EventlaneRelayStatus,
} from "../src/index.ts";

export const PACKAGE_DIR = path.resolve(import.meta.dirname, "..");
export const RULES_FILE = path.join(PACKAGE_DIR, "alerts", "eventlane.rules.yml");

/** A Kysely over its own pool. Pool errors (a cut connection) are swallowed, as an application must. */
export function kyselyFor(
  connectionString: string,
  poolOptions: pg.PoolConfig = {},
): { db: Kysely<unknown>; pool: pg.Pool } {
  const pool = new pg.Pool({ connectionString, max: 5, ...poolOptions });
  pool.on("error", () => {});
  // pg emits a checked-out client's socket error on the client, with no listener from the pool or
  // Kysely: unhandled, it would end the process when a proxy cuts a connection mid-query.
  pool.on("connect", (client) => client.on("error", () => {}));
  return { db: new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) }), pool };
}

/** A migrated database of its own for one test file. */
export async function migratedDatabase(): Promise<{
  tdb: TestDatabase;
  db: Kysely<unknown>;
  close: () => Promise<void>;
}> {
  const tdb = await createTestDatabase("el_fastify");
  const { db } = kyselyFor(tdb.url);
  await migrateToLatest(db);
  return {
    tdb,
    db,
    close: async () => {
      await db.destroy();
      await tdb.drop();
    },
  };
}

/**
 * A stand-in for the relay that implements the plugin's structural relay interface: tests emit the
 * relay's typed events on it and set its status. It is not a mock of PostgreSQL or Kafka.
 */
export class FakeRelay implements EventlaneRelayHandle {
  readonly #emitter = new EventEmitter();
  current: EventlaneRelayStatus = { instanceId: "fake-1", running: true, producerConnected: true, shards: [] };

  status(): EventlaneRelayStatus {
    return this.current;
  }
  /** Like `@eventlane/relay`'s handle: returns the unsubscribe function. */
  on<E extends EventlaneRelayEventName>(event: E, listener: (payload: EventlaneRelayEvents[E]) => void): () => void {
    this.#emitter.on(event, listener);
    return () => this.#emitter.off(event, listener);
  }
  emit<E extends EventlaneRelayEventName>(event: E, payload: EventlaneRelayEvents[E]): void {
    this.#emitter.emit(event, payload);
  }
  listenerCount(): number {
    return this.#emitter.eventNames().reduce((n, e) => n + this.#emitter.listenerCount(e), 0);
  }
}

/** Runs promtool; resolves with its exit code and output (never rejects on a non-zero exit). */
export function promtool(args: readonly string[], stdin?: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile("promtool", [...args], { timeout: 60_000 }, (error, stdout, stderr) => {
      if (error !== null && typeof error.code !== "number") {
        reject(new Error(`promtool could not run (install the Debian package "prometheus"): ${error.message}`));
        return;
      }
      resolve({ code: error === null ? 0 : Number(error.code), output: `${stdout}${stderr}` });
    });
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

/** Writes files into a fresh temporary directory; returns it and a cleanup. */
export async function tempFiles(files: Record<string, string>): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), "eventlane-fastify-"));
  for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the samples of a Prometheus text exposition (enough for the plugin's own output). */
export function parseSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] ?? ""] = l[2] ?? "";
    const raw = m[4] ?? "";
    out.push({ name: m[1] ?? "", labels, value: raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw) });
  }
  return out;
}

/** The value of one sample, or undefined when absent. */
export function sampleValue(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return samples.find(
    (s) =>
      s.name === name &&
      Object.keys(labels).length === Object.keys(s.labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )?.value;
}
