import { type Kysely, sql } from "kysely";
import { type Migration, type MigrationProvider, Migrator } from "kysely/migration";
import { SchemaVersionError } from "../errors.ts";

/**
 * A migration written as SQL text over resolved (validated, quoted) names `N`. Eventlane's packages
 * keep their DDL this way so the same text serves Kysely's `Migrator` and DBAs who apply SQL by hand.
 */
export interface SqlMigration<N> {
  readonly name: string;
  readonly up: (names: N) => string;
  readonly down: (names: N) => string;
}

/** The migrations as Kysely `Migration`s, for a `Migrator` of your own. */
export function toKyselyMigrations<N>(migrations: readonly SqlMigration<N>[], names: N): Record<string, Migration> {
  const out: Record<string, Migration> = {};
  for (const m of migrations) {
    out[m.name] = {
      up: async (db) => {
        await sql.raw(m.up(names)).execute(db);
      },
      down: async (db) => {
        await sql.raw(m.down(names)).execute(db);
      },
    };
  }
  return out;
}

/** Every migration's DDL, in order, as one SQL script. */
export function migrationsDdl<N>(migrations: readonly SqlMigration<N>[], names: N): string {
  return migrations.map((m) => `-- ${m.name}\n${m.up(names).trim()}\n`).join("\n");
}

/**
 * Runs migrations with Kysely's `Migrator`, its bookkeeping tables (`tableName`, `tableName_lock`)
 * in `schema`, which is created first. `schema` and `tableName` must already be validated.
 */
export async function runMigrationsToLatest<DB>(
  db: Kysely<DB>,
  options: { readonly schema: string; readonly tableName: string; readonly migrations: Record<string, Migration> },
): Promise<void> {
  await sql.raw(`CREATE SCHEMA IF NOT EXISTS "${options.schema}"`).execute(db);
  const provider: MigrationProvider = { getMigrations: async () => options.migrations };
  const migrator = new Migrator({
    db,
    provider,
    migrationTableSchema: options.schema,
    migrationTableName: options.tableName,
    migrationLockTableName: `${options.tableName}_lock`,
  });
  const { error } = await migrator.migrateToLatest();
  if (error !== undefined) throw error;
}

/**
 * Checks the version row of a `schema_info` table (quoted, qualified name); throws
 * {@link SchemaVersionError} with `describe`'s message unless it is `expected`.
 */
export async function assertSchemaInfoVersion<DB>(
  db: Kysely<DB>,
  schemaInfoTable: string,
  expected: number,
  describe: (actual: number | null) => string,
): Promise<void> {
  const exists = await sql<{ t: string | null }>`SELECT to_regclass(${schemaInfoTable}) AS t`.execute(db);
  let actual: number | null = null;
  if (exists.rows[0]?.t != null) {
    const r = await sql<{ version: number }>`SELECT version FROM ${sql.raw(schemaInfoTable)}`.execute(db);
    actual = r.rows[0]?.version ?? null;
  }
  if (actual !== expected) throw new SchemaVersionError({ expected, actual, message: describe(actual) });
}
