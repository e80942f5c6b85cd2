import {
  assertSchemaInfoVersion,
  migrationsDdl,
  runMigrationsToLatest,
  type SqlMigration,
  toKyselyMigrations,
} from "@eventlane/core/internal";
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";
import { type ConsumerSchemaOptions, type ConsumerTableNames, resolveConsumerTableNames } from "./names.ts";

/** The consumer schema version this release needs; `start()` refuses to run on any other. */
export const CONSUMER_SCHEMA_VERSION = 2;

/** Migration 1: per-key watermarks, the event-id inbox and the dead letters. */
function migration001(n: ConsumerTableNames): string {
  return `
CREATE SCHEMA IF NOT EXISTS ${n.schemaSql};

-- The last applied position per (consumer, topic, key): the aggregate version of an event-sourced
-- stream or the key sequence of a plain enqueue. Updated in the handler's transaction, so a message
-- at or below it is a duplicate. Its row lock serialises two deliveries of one key.
CREATE TABLE ${n.watermarks} (
  consumer   text        NOT NULL,
  topic      text        NOT NULL,
  key        text        NOT NULL,
  kind       text        NOT NULL CHECK (kind IN ('aggregate_version', 'key_sequence')),
  position   bigint      NOT NULL CHECK (position >= 0),
  duplicates bigint      NOT NULL DEFAULT 0,
  gaps       bigint      NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, topic, key, kind)
);

-- Event ids applied, for messages that carry no position header.
CREATE TABLE ${n.inbox} (
  consumer   text        NOT NULL,
  event_id   text        NOT NULL,
  topic      text        NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);

-- Messages the consumer could not apply, with the reason; one row per Kafka record, so a
-- redelivered record is not dead-lettered twice.
CREATE TABLE ${n.deadLetters} (
  id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  consumer   text        NOT NULL,
  topic      text        NOT NULL,
  partition  integer     NOT NULL,
  "offset"   bigint      NOT NULL,
  key        text,
  value      text,
  headers    jsonb       NOT NULL,
  event_type text,
  event_id   text,
  reason     text        NOT NULL,
  detail     text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (consumer, topic, partition, "offset")
);

CREATE TABLE ${n.schemaInfo} (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version   integer NOT NULL
);
INSERT INTO ${n.schemaInfo} (version) VALUES (1);
`;
}

function migration001Down(n: ConsumerTableNames): string {
  return [n.schemaInfo, n.deadLetters, n.inbox, n.watermarks].map((t) => `DROP TABLE IF EXISTS ${t};`).join("\n");
}

/**
 * Migration 2: dead letters that can be replayed or skipped. A status per dead letter (the replay
 * guard: only a pending or replay-requested one is applied, once), who asked and when, and a log of
 * every action with its actor. The partial index serves `onDeadLetter: "park_key"`, which looks up
 * the unresolved dead letters of a chunk's keys.
 */
function migration002(n: ConsumerTableNames): string {
  return `
ALTER TABLE ${n.deadLetters}
  ADD COLUMN status       text NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'replay_requested', 'replayed', 'skipped')),
  ADD COLUMN requested_by text,
  ADD COLUMN requested_at timestamptz,
  ADD COLUMN resolved_by  text,
  ADD COLUMN resolved_at  timestamptz;

CREATE INDEX dead_letters_unresolved_key ON ${n.deadLetters} (consumer, topic, key, id)
  WHERE status IN ('pending', 'replay_requested');

-- Every replay request, replay, failed replay and skip, with who did it.
CREATE TABLE ${n.deadLetterActions} (
  id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dead_letter_id bigint      NOT NULL REFERENCES ${n.deadLetters} (id) ON DELETE CASCADE,
  consumer       text        NOT NULL,
  action         text        NOT NULL CHECK (action IN ('replay_requested', 'replayed', 'replay_failed', 'skipped')),
  actor          text        NOT NULL,
  detail         text,
  at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letter_actions_letter ON ${n.deadLetterActions} (dead_letter_id);

UPDATE ${n.schemaInfo} SET version = 2;
`;
}

function migration002Down(n: ConsumerTableNames): string {
  return `
DROP TABLE IF EXISTS ${n.deadLetterActions};
DROP INDEX IF EXISTS ${n.schemaSql}.dead_letters_unresolved_key;
ALTER TABLE ${n.deadLetters} DROP COLUMN status, DROP COLUMN requested_by, DROP COLUMN requested_at,
  DROP COLUMN resolved_by, DROP COLUMN resolved_at;
UPDATE ${n.schemaInfo} SET version = 1;
`;
}

const MIGRATIONS: readonly SqlMigration<ConsumerTableNames>[] = [
  { name: "0001_eventlane_consumer_initial", up: migration001, down: migration001Down },
  { name: "0002_eventlane_consumer_dead_letter_replay", up: migration002, down: migration002Down },
];

/** The consumer's migrations for your own Kysely `Migrator`, or use {@link migrateConsumerToLatest}. */
export function consumerMigrations(options: ConsumerSchemaOptions = {}): Record<string, Migration> {
  return toKyselyMigrations(MIGRATIONS, resolveConsumerTableNames(options));
}

/** The DDL of every consumer migration, in order, as plain SQL for DBAs. */
export function consumerDdl(options: ConsumerSchemaOptions = {}): string {
  return migrationsDdl(MIGRATIONS, resolveConsumerTableNames(options));
}

/**
 * Applies the consumer's migrations to the consumer's database with Kysely's `Migrator`, keeping its
 * bookkeeping tables in the consumer schema (`consumer_migration`, `consumer_migration_lock`).
 */
export async function migrateConsumerToLatest<DB>(db: Kysely<DB>, options: ConsumerSchemaOptions = {}): Promise<void> {
  const n = resolveConsumerTableNames(options);
  await runMigrationsToLatest(db, {
    schema: n.schema,
    tableName: "consumer_migration",
    migrations: consumerMigrations(options),
  });
}

/** Throws `SchemaVersionError` (code `EVENTLANE_SCHEMA_VERSION`) unless the consumer schema is current. */
export async function assertConsumerSchemaVersion<DB>(db: Kysely<DB>, names: ConsumerTableNames): Promise<void> {
  await assertSchemaInfoVersion(db, names.schemaInfo, CONSUMER_SCHEMA_VERSION, (actual) =>
    actual === null
      ? `the consumer's tables are missing in schema "${names.schema}": run migrateConsumerToLatest() (or apply consumerDdl()) first`
      : `the consumer schema "${names.schema}" is at version ${actual}, this code needs ${CONSUMER_SCHEMA_VERSION}`,
  );
}
