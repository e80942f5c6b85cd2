import pg from "pg";
import { pgAdminUrl, uniqueSuffix } from "./env.ts";

export interface TestDatabase {
  /** The database name, unique to this test file. */
  readonly name: string;
  /** Connection string for the database. */
  readonly url: string;
  /** Builds a connection string for this database that goes through another host:port (a fault proxy). */
  readonly urlVia: (host: string, port: number) => string;
  /** Terminates every session and drops the database. */
  readonly drop: () => Promise<void>;
}

function withDatabase(url: string, database: string, host?: string, port?: number): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  if (host !== undefined) u.hostname = host;
  if (port !== undefined) u.port = String(port);
  return u.toString();
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: pgAdminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Creates a fresh database (from template0) for one test file, so files run in parallel and in any
 * order. Call `drop()` in `afterAll`.
 */
export async function createTestDatabase(prefix = "el_test"): Promise<TestDatabase> {
  const name = `${prefix}_${uniqueSuffix()}`.toLowerCase().replace(/[^a-z0-9_]/g, "_");
  await admin((c) => c.query(`CREATE DATABASE "${name}" TEMPLATE template0`));
  const url = withDatabase(pgAdminUrl, name);
  return {
    name,
    url,
    urlVia: (host, port) => withDatabase(pgAdminUrl, name, host, port),
    drop: () =>
      admin(async (c) => {
        await c.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
          [name],
        );
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      }),
  };
}
