import type { Kysely, Transaction } from "kysely";
import { isEventlaneError } from "../errors.ts";

/** Where a write goes: your `Kysely` instance (Eventlane opens a transaction) or your open `Transaction`. */
// biome-ignore lint/suspicious/noExplicitAny: the caller's database type is irrelevant here; Eventlane only runs its own SQL
export type Executor = Kysely<any> | Transaction<any>;

/**
 * What the database (pg, the pool, Kysely) threw under an event store call, remembered by identity.
 * The Effect face classifies a failure by where it came from: a SQLSTATE error, a refused connection
 * (`ECONNREFUSED`, an `AggregateError`) and a dropped session all come from here, while a decider's
 * `{ code: "EXPIRED" }` does not, whatever its `code` looks like.
 */
const failures = new WeakSet<object>();

function remember(error: unknown): void {
  if (typeof error === "object" && error !== null && !isEventlaneError(error)) failures.add(error);
}

/** True when `error` was thrown by a database call of the event store. */
export function isDatabaseFailure(error: unknown): boolean {
  return typeof error === "object" && error !== null && failures.has(error);
}

/** Runs database work, remembering what it throws (other than Eventlane's own errors) as the database's. */
export async function fromDatabase<R>(run: () => Promise<R>): Promise<R> {
  try {
    return await run();
  } catch (error) {
    remember(error);
    throw error;
  }
}

/** Runs one statement (anything with Kysely's `execute(db)`), remembering what it throws as the database's. */
export function execute<R>(db: Executor, query: { execute(db: Executor): Promise<R> }): Promise<R> {
  return fromDatabase(() => query.execute(db));
}

/**
 * Runs `fn` in `db`'s transaction, or in a new one. What `fn` throws passes through untouched; what
 * opening or committing the transaction throws is remembered as the database's.
 */
export async function inTransaction<T>(db: Executor, fn: (trx: Executor) => Promise<T>): Promise<T> {
  if (db.isTransaction) return fn(db);
  let thrownByFn: { readonly error: unknown } | undefined;
  try {
    return await db.transaction().execute(async (trx) => {
      try {
        return await fn(trx);
      } catch (error) {
        thrownByFn = { error };
        throw error;
      }
    });
  } catch (error) {
    if (thrownByFn === undefined || thrownByFn.error !== error) remember(error);
    throw error;
  }
}
