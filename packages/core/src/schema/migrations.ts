import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";
import { refuseUnknownOptions } from "../internal/option-kit.ts";
import { resolveTableNames, type SchemaOptions, type TableNames } from "./names.ts";
import {
  assertSchemaInfoVersion,
  migrationsDdl,
  runMigrationsToLatest,
  type SqlMigration,
  toKyselyMigrations,
} from "./sql-migrations.ts";

/**
 * The schema version this release of Eventlane needs: the relay refuses to start on any other, and an
 * event store fails its first call with `SchemaVersionError`.
 */
export const SCHEMA_VERSION = 2;

/**
 * Autovacuum settings for the outbox. It churns (insert, update to published, delete by retention),
 * so vacuum must run often and on a row count, not a fraction of a table that may be large or small.
 * A transaction left open anywhere in the cluster holds back the xmin horizon: vacuum then cannot
 * remove dead outbox tuples, the pending-row index bloats and the relay's scan slows until it ends.
 */
const OUTBOX_STORAGE =
  "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000, " +
  "autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 10000, " +
  "autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 5000, fillfactor = 90";

/** Migration 1: the event store, the outbox, per-key sequences and the relay's coordination tables. */
function migration001(n: TableNames): string {
  return `
CREATE SCHEMA IF NOT EXISTS ${n.schemaSql};

-- One row per event-sourced stream; its row lock serialises writers of the stream.
CREATE TABLE ${n.streams} (
  stream_id   text        PRIMARY KEY,
  stream_type text        NOT NULL,
  version     integer     NOT NULL CHECK (version >= 0),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ${n.events} (
  stream_id      text        NOT NULL,
  version        integer     NOT NULL CHECK (version > 0),
  event_id       uuid        NOT NULL,
  event_type     text        NOT NULL,
  schema_version integer     NOT NULL,
  payload        jsonb       NOT NULL,
  metadata       jsonb       NOT NULL DEFAULT '{}'::jsonb,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream_id, version),
  CONSTRAINT ${n.plain("events_event_id_key")} UNIQUE (event_id)
);

CREATE TABLE ${n.snapshots} (
  stream_id        text        PRIMARY KEY,
  version          integer     NOT NULL,
  snapshot_version integer     NOT NULL,
  state            jsonb       NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now()
);

-- The transactional outbox. id is handed out at insert, not at commit, so the relay reads by
-- status = 'pending' (never by an id cursor) and a row that commits late is still found.
-- payload is NULL for event-sourced rows: the relay reads it from the events row with the same event_id.
-- It is json, not jsonb: stored as the writer serialised it and read back as text without re-rendering,
-- which is what Kafka gets (the relay never parses it).
CREATE TABLE ${n.outbox} (
  id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_id          uuid        NOT NULL,
  topic             text        NOT NULL,
  key               text        NOT NULL,
  key_hash          integer     NOT NULL,
  event_type        text        NOT NULL,
  schema_version    integer     NOT NULL,
  aggregate_type    text,
  aggregate_id      text,
  aggregate_version integer,
  key_sequence      bigint,
  payload           json,
  headers           jsonb       NOT NULL DEFAULT '{}'::jsonb,
  status            text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'published', 'dead_lettered', 'skipped')),
  attempts          integer     NOT NULL DEFAULT 0,
  last_error        text,
  created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  published_at      timestamptz,
  published_epoch   bigint
) WITH (${OUTBOX_STORAGE});

CREATE INDEX ${n.plain("outbox_pending_idx")} ON ${n.outbox} (id) WHERE status = 'pending';
CREATE INDEX ${n.plain("outbox_dead_letter_idx")} ON ${n.outbox} (topic, key, id) WHERE status = 'dead_lettered';

-- Per (topic, key) sequence for plain enqueue: the upsert's row lock makes same-key writers commit
-- in sequence order, and consumers check the sequence header for gaps.
CREATE TABLE ${n.keySequences} (
  topic         text   NOT NULL,
  key           text   NOT NULL,
  last_sequence bigint NOT NULL,
  PRIMARY KEY (topic, key)
);

-- How many shards the outbox is split into; a relay started with another count refuses to run.
CREATE TABLE ${n.relayConfig} (
  singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
  shard_count integer     NOT NULL CHECK (shard_count > 0),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per shard: the fencing token and epoch of its current leader.
CREATE TABLE ${n.relayShards} (
  shard        integer     PRIMARY KEY CHECK (shard >= 0),
  token        uuid,
  epoch        bigint      NOT NULL DEFAULT 0,
  owner        text,
  acquired_at  timestamptz,
  heartbeat_at timestamptz
);

-- A dead-lettered row parks its (topic, key): nothing later of that key is published until the
-- dead letter is requeued or skipped.
CREATE TABLE ${n.parkedKeys} (
  topic     text        NOT NULL,
  key       text        NOT NULL,
  outbox_id bigint      NOT NULL,
  reason    text        NOT NULL,
  parked_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, key)
);

CREATE TABLE ${n.deadLetterLog} (
  id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  outbox_id bigint      NOT NULL,
  topic     text        NOT NULL,
  key       text        NOT NULL,
  action    text        NOT NULL CHECK (action IN ('dead_lettered', 'requeued', 'skipped')),
  reason    text,
  actor     text,
  at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ${n.schemaInfo} (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version   integer NOT NULL
);
INSERT INTO ${n.schemaInfo} (version) VALUES (1);
`;
}

function migration001Down(n: TableNames): string {
  return [
    "schemaInfo",
    "deadLetterLog",
    "parkedKeys",
    "relayShards",
    "relayConfig",
    "keySequences",
    "outbox",
    "snapshots",
    "events",
    "streams",
  ]
    .map((t) => `DROP TABLE IF EXISTS ${n[t as keyof TableNames] as string};`)
    .join("\n");
}

/**
 * Migration 2: event payloads stored as the writer serialised them. `events.payload` becomes json
 * (validated text, kept byte for byte) instead of jsonb (re-rendered on output: keys reordered, a
 * space after every ":" and ","), so the relay sends an event-sourced event exactly as `enqueue`
 * sends a plain one: one event type, one byte form on a topic.
 * Breaking for operations: the ALTER rewrites the events table under an ACCESS EXCLUSIVE lock, so
 * writers and readers of the event store wait for it; payloads already stored keep jsonb's rendering.
 */
function migration002(n: TableNames): string {
  return `
ALTER TABLE ${n.events} ALTER COLUMN payload TYPE json USING payload::json;
UPDATE ${n.schemaInfo} SET version = 2;
`;
}

function migration002Down(n: TableNames): string {
  return `
ALTER TABLE ${n.events} ALTER COLUMN payload TYPE jsonb USING payload::jsonb;
UPDATE ${n.schemaInfo} SET version = 1;
`;
}

const MIGRATIONS: readonly SqlMigration<TableNames>[] = [
  { name: "0001_eventlane_initial", up: migration001, down: migration001Down },
  { name: "0002_eventlane_event_payload_json", up: migration002, down: migration002Down },
];

const SCHEMA_OPTIONS = ["schema", "tablePrefix"] as const satisfies readonly (keyof SchemaOptions)[];

/** {@link SchemaOptions} checked (unknown keys refused, identifiers validated) and resolved. */
function schemaTableNames(options: SchemaOptions): TableNames {
  refuseUnknownOptions(options, SCHEMA_OPTIONS, "schema");
  return resolveTableNames(options);
}

/**
 * Eventlane's migrations for a Kysely `Migrator`: add them to your own provider, or use
 * {@link migrateToLatest}. Names are prefixed `eventlane_` so they sort apart from yours.
 */
export function eventlaneMigrations(options: SchemaOptions = {}): Record<string, Migration> {
  return toKyselyMigrations(MIGRATIONS, schemaTableNames(options));
}

/** The DDL of every migration, in order, as plain SQL for DBAs who apply schema changes by hand. */
export function eventlaneDdl(options: SchemaOptions = {}): string {
  return migrationsDdl(MIGRATIONS, schemaTableNames(options));
}

/**
 * Applies Eventlane's migrations with Kysely's `Migrator`, keeping its bookkeeping tables in
 * Eventlane's schema (`eventlane_migration`, `eventlane_migration_lock`). Unknown option keys are
 * refused with `InvalidOptionError` naming the key, before any SQL runs.
 */
export async function migrateToLatest<DB>(db: Kysely<DB>, options: SchemaOptions = {}): Promise<void> {
  const n = schemaTableNames(options);
  await runMigrationsToLatest(db, {
    schema: n.schema,
    tableName: n.plain("eventlane_migration"),
    migrations: toKyselyMigrations(MIGRATIONS, n),
  });
}

/** Reads the schema version; throws {@link SchemaVersionError} unless it is {@link SCHEMA_VERSION}. */
export async function assertSchemaVersion<DB>(db: Kysely<DB>, options: SchemaOptions = {}): Promise<void> {
  await checkSchemaVersion(db, schemaTableNames(options));
}

/**
 * {@link assertSchemaVersion} over resolved names, for a `Kysely` or an open `Transaction` (two reads,
 * neither of which can abort the transaction: `to_regclass` returns NULL for a missing table).
 * @internal used by the event store's first call
 */
export async function checkSchemaVersion<DB>(db: Kysely<DB>, n: TableNames): Promise<void> {
  await assertSchemaInfoVersion(db, n.schemaInfo, SCHEMA_VERSION, (actual) =>
    actual === null
      ? `Eventlane's tables are missing in schema "${n.schema}": run migrateToLatest() (or apply eventlaneDdl()) first`
      : `Eventlane's schema "${n.schema}" is at version ${actual}, this code needs ${SCHEMA_VERSION}: run the migrations (migrateToLatest())`,
  );
}
