import type { TableNames } from "@eventlane/core";
import { murmur2 } from "@eventlane/core/internal";
import pg from "pg";

/** First key of the two-int advisory lock: a hash of the installation's namespaced name (pg-boss style). */
export function advisoryLockNamespace(tables: TableNames): number {
  return murmur2(`eventlane:relay:${tables.schema}.${tables.tablePrefix}`) & 0x7fffffff;
}

export interface LockSessionSettings {
  readonly connectionString: string;
  readonly leaseMs: number;
  readonly applicationName: string;
}

/**
 * Opens the dedicated session a shard lock lives on: one `pg.Client`, never a pool. The server is
 * told to end the session when it is silent for a lease:
 * - `idle_session_timeout = lease`: a paused holder (SIGSTOP, long GC) sends no heartbeat, so the
 *   server closes its session, which frees the lock, about one lease after its last heartbeat;
 * - TCP keepalives (idle lease/3, interval lease/9, 3 probes) and `tcp_user_timeout = lease` for a
 *   peer that vanished from the network.
 * The client enables keepalive too, so it notices a dead server.
 */
export async function openLockSession(settings: LockSessionSettings): Promise<pg.Client> {
  const leaseS = Math.max(1, Math.ceil(settings.leaseMs / 1000));
  const client = new pg.Client({
    connectionString: settings.connectionString,
    keepAlive: true,
    keepAliveInitialDelayMillis: Math.max(1000, Math.floor(settings.leaseMs / 3)),
    connectionTimeoutMillis: settings.leaseMs,
    application_name: settings.applicationName,
  });
  // An 'error' on an idle client (the server ended the session) must never crash the process; the
  // next heartbeat reports it.
  client.on("error", () => undefined);
  await client.connect();
  try {
    await client.query(
      `SET idle_session_timeout = ${settings.leaseMs};
       SET idle_in_transaction_session_timeout = ${settings.leaseMs};
       SET tcp_keepalives_idle = ${Math.max(1, Math.floor(leaseS / 3))};
       SET tcp_keepalives_interval = ${Math.max(1, Math.floor(leaseS / 9))};
       SET tcp_keepalives_count = 3;
       SET tcp_user_timeout = ${settings.leaseMs};`,
    );
  } catch (error) {
    await closeLockSession(client, 1000);
    throw error;
  }
  return client;
}

/** Ends a session; if the server does not answer within `timeoutMs` (a partition), destroys the socket. */
export async function closeLockSession(client: pg.Client, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const destroyed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      destroySocket(client);
      resolve();
    }, timeoutMs);
    timer.unref();
  });
  await Promise.race([client.end().catch(() => undefined), destroyed]);
  clearTimeout(timer);
}

/** pg.Client keeps its socket on `connection.stream`; not part of the typings. */
export function destroySocket(client: pg.Client): void {
  const stream = (client as unknown as { connection?: { stream?: { destroy?: () => void } } }).connection?.stream;
  stream?.destroy?.();
}

/** Runs a query with a client-side deadline; on expiry the socket is destroyed and the query rejects. */
export async function queryWithDeadline<R extends pg.QueryResultRow>(
  client: pg.Client,
  text: string,
  values: readonly unknown[],
  timeoutMs: number,
): Promise<pg.QueryResult<R>> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      destroySocket(client);
      reject(new Error(`no answer from PostgreSQL within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([client.query<R>(text, [...values]), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
