import { eventlaneDdl, migrateToLatest } from "@eventlane/core";
import { consumerDdl, migrateConsumerToLatest } from "@eventlane/consumer";
import { HELP_OPTION, type OptionSpec } from "../args/options.ts";
import type { Command } from "../command.ts";
import {
  CONSUMER_DATABASE_URL_OPTION,
  DATABASE_OPTIONS,
  JSON_OPTION,
  resolveConsumerSchema,
  resolveConsumerUrl,
  resolveDatabase,
  resolveSchema,
} from "../config/config.ts";
import { type Database, openDatabase } from "../config/connections.ts";
import { readSchemaVersion } from "../database/statements.ts";
import { ExitCodes } from "../exit-codes.ts";

const CORE_OPTION: OptionSpec = {
  name: "core",
  type: "boolean",
  description: "migrate Eventlane's own schema (the default, unless --consumer is given)",
};
const MIGRATE_CONSUMER_OPTION: OptionSpec = {
  name: "consumer",
  type: "string",
  value: "<schema>",
  description: "migrate this consumer schema (in --consumer-database-url)",
};
const PRINT_OPTION: OptionSpec = {
  name: "print",
  type: "boolean",
  description: "print the DDL instead of applying it (for DBAs; needs no database)",
};

/** One schema a migrate run looked at. */
export interface MigratedSchema {
  readonly kind: "core" | "consumer";
  readonly schema: string;
  /** Before (null: no tables) and after. */
  readonly from: number | null;
  readonly to: number | null;
}

export const migrateCommand: Command = {
  name: "migrate",
  summary: "apply Eventlane's migrations (core schema and consumer schemas)",
  usage: "migrate [--core] [--consumer <schema>] [--print] [--json] [database options]",
  details: `Applies every pending migration with Kysely's Migrator, its bookkeeping tables in the same
schema (eventlane_migration, eventlane_migration_lock: concurrent runs wait for each other). Without
flags it migrates Eventlane's schema (--schema, --table-prefix); --consumer <schema> migrates that
consumer schema instead, in the consumer's database; give --core as well for both. A database
Eventlane did not create gets the schema created; existing tables of yours are not touched.`,
  options: [
    ...DATABASE_OPTIONS,
    CORE_OPTION,
    MIGRATE_CONSUMER_OPTION,
    CONSUMER_DATABASE_URL_OPTION,
    PRINT_OPTION,
    JSON_OPTION,
    HELP_OPTION,
  ],
  positionals: { min: 0, max: 0 },
  exitCodes: { ok: "every schema named is at the latest version (or the DDL was printed)" },
  async run(ctx) {
    const consumer = resolveConsumerSchema(ctx.args);
    const core = consumer === undefined || ctx.args.values.core === true;
    if (ctx.args.values.print === true) {
      const parts: string[] = [];
      if (core) parts.push(eventlaneDdl(resolveSchema(ctx.args, ctx.env).schemaOptions));
      if (consumer !== undefined) parts.push(consumerDdl({ schema: consumer.schema }));
      ctx.print({ ddl: parts.join("\n") }, () => parts.join("\n").trimEnd());
      return ExitCodes.ok;
    }
    const done: MigratedSchema[] = [];
    if (core) {
      const target = resolveDatabase(ctx.args, ctx.env);
      await withDatabase(target.url, "the outbox's database", async (database) => {
        const from = await readSchemaVersion(database.db, target.tables.schemaInfo);
        await migrateToLatest(database.db, target.schemaOptions);
        const to = await readSchemaVersion(database.db, target.tables.schemaInfo);
        done.push({ kind: "core", schema: target.tables.schema, from, to });
      });
    }
    if (consumer !== undefined) {
      await withDatabase(resolveConsumerUrl(ctx.args, ctx.env), "the consumer's database", async (database) => {
        const from = await readSchemaVersion(database.db, consumer.schemaInfo);
        await migrateConsumerToLatest(database.db, { schema: consumer.schema });
        const to = await readSchemaVersion(database.db, consumer.schemaInfo);
        done.push({ kind: "consumer", schema: consumer.schema, from, to });
      });
    }
    ctx.print({ schemas: done }, () =>
      done
        .map((d) => {
          const what = `${d.kind === "core" ? "Eventlane" : "consumer"} schema "${d.schema}"`;
          return d.from === d.to
            ? `${what}: at version ${d.to}, nothing to do`
            : `${what}: migrated from ${d.from === null ? "nothing" : `version ${d.from}`} to version ${d.to}`;
        })
        .join("\n"),
    );
    return ExitCodes.ok;
  },
};

async function withDatabase(url: string, what: string, run: (database: Database) => Promise<void>): Promise<void> {
  const database = await openDatabase(url, what);
  try {
    await run(database);
  } finally {
    await database.close();
  }
}
