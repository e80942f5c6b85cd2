import { assertSchemaVersion, SCHEMA_VERSION, SchemaVersionError } from "@eventlane/core";
import { assertConsumerSchemaVersion, CONSUMER_SCHEMA_VERSION, type ConsumerTableNames } from "@eventlane/consumer";
import { Kafka, logLevel, type Admin } from "kafkajs";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { EnvironmentError } from "../errors.ts";
import type { DatabaseTarget, KafkaTarget } from "./config.ts";

/** How long the CLI waits for a PostgreSQL connection or a Kafka broker before giving up (exit 3). */
const CONNECT_TIMEOUT_MS = 10_000;
/** A statement that runs longer is cancelled by the server: verify and replay scan the outbox. */
const STATEMENT_TIMEOUT_MS = 300_000;

/** A pool and a Kysely over it, for one command. */
export interface Database {
  readonly pool: pg.Pool;
  readonly db: Kysely<unknown>;
  close(): Promise<void>;
}

/** pg's message and SQLSTATE, or Node's system error code; never the connection string. */
export function describeDatabaseError(error: unknown): string {
  if (error instanceof pg.DatabaseError) return `${error.message} (SQLSTATE ${error.code})`;
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return typeof code === "string" && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

/**
 * SQLSTATE classes that mean the server or the credentials, not the statement: 08 connection
 * exception, 28 invalid authorization, 3D invalid catalog (no such database), 57P operator
 * intervention (shutdown), 53 insufficient resources, and 42501 insufficient privilege.
 */
export function isEnvironmentSqlState(code: string | undefined): boolean {
  if (code === undefined) return false;
  return ["08", "28", "3D", "57", "53"].includes(code.slice(0, 2)) || code === "42501";
}

/**
 * Opens a small pool and proves it with one connection: a refused, unreachable or unauthorised
 * database is an {@link EnvironmentError} (exit 3) here, before any command runs a statement.
 */
export async function openDatabase(url: string, what: string): Promise<Database> {
  const pool = new pg.Pool({
    connectionString: url,
    max: 3,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    application_name: "eventlane-cli",
  });
  // An idle client's socket error has no other listener: without these it would end the process.
  pool.on("error", () => undefined);
  pool.on("connect", (client) => client.on("error", () => undefined));
  try {
    const client = await pool.connect();
    client.release();
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw new EnvironmentError({
      kind: "connection",
      message: `cannot connect to ${what}: ${describeDatabaseError(error)}`,
    });
  }
  const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
  return {
    pool,
    db,
    // Kysely's destroy ends the pool it was given.
    close: () => db.destroy().catch(() => undefined),
  };
}

/** Throws an {@link EnvironmentError} (`schema`) telling how to migrate, unless the core schema is current. */
export async function checkCoreSchema(database: Database, target: DatabaseTarget): Promise<void> {
  try {
    await assertSchemaVersion(database.db, target.schemaOptions);
  } catch (error) {
    if (!(error instanceof SchemaVersionError)) throw error;
    const where = `schema "${target.tables.schema}"${target.tables.tablePrefix === "" ? "" : ` (table prefix "${target.tables.tablePrefix}")`}`;
    throw new EnvironmentError({
      kind: "schema",
      message:
        error.actual === null
          ? `this database has no Eventlane tables in ${where}: run \`eventlane migrate\` (or apply \`eventlane migrate --print\`), or point --schema/--table-prefix at them`
          : error.actual > SCHEMA_VERSION
            ? `Eventlane's ${where} is at version ${error.actual}, newer than this CLI knows (${SCHEMA_VERSION}): use a newer eventlane`
            : `Eventlane's ${where} is at version ${error.actual}, this CLI needs ${SCHEMA_VERSION}: run \`eventlane migrate\``,
    });
  }
}

/** The same for a consumer's schema. */
export async function checkConsumerSchema(database: Database, tables: ConsumerTableNames): Promise<void> {
  try {
    await assertConsumerSchemaVersion(database.db, tables);
  } catch (error) {
    if (!(error instanceof SchemaVersionError)) throw error;
    throw new EnvironmentError({
      kind: "schema",
      message:
        error.actual === null
          ? `this database has no consumer tables in schema "${tables.schema}": run \`eventlane migrate --consumer ${tables.schema}\`, or check --consumer`
          : `the consumer schema "${tables.schema}" is at version ${error.actual}, this CLI needs ${CONSUMER_SCHEMA_VERSION}: run \`eventlane migrate --consumer ${tables.schema}\``,
    });
  }
}

/** A kafkajs client for the target: logging off (the CLI reports errors itself), few retries. */
export function kafkaClient(target: KafkaTarget): Kafka {
  return new Kafka({
    clientId: target.clientId,
    brokers: [...target.brokers],
    ssl: target.ssl,
    ...(target.sasl === undefined ? {} : { sasl: { ...target.sasl } as never }),
    connectionTimeout: CONNECT_TIMEOUT_MS / 2,
    requestTimeout: 30_000,
    logLevel: logLevel.NOTHING,
    retry: { retries: 3, initialRetryTime: 200 },
  });
}

/** Connects an admin client; an unreachable cluster is an {@link EnvironmentError} (exit 3). */
export async function connectAdmin(kafka: Kafka): Promise<Admin> {
  const admin = kafka.admin();
  try {
    await admin.connect();
  } catch (error) {
    await admin.disconnect().catch(() => undefined);
    throw new EnvironmentError({
      kind: "connection",
      message: `cannot connect to Kafka: ${error instanceof Error ? error.message : String(error)}`,
    });
  }
  return admin;
}

/** Partition count of a topic; an {@link EnvironmentError} (`topic`) when it does not exist. */
export async function topicPartitions(admin: Admin, topic: string): Promise<number> {
  const topics = await admin.listTopics();
  if (!topics.includes(topic)) {
    throw new EnvironmentError({ kind: "topic", message: `topic "${topic}" does not exist` });
  }
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  return meta.topics[0]?.partitions.length ?? 0;
}
