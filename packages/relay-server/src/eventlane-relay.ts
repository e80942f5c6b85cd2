#!/usr/bin/env node
/**
 * The `eventlane-relay` process: a relay configured from environment variables (see
 * `RelayEnvVariables`), with a small HTTP server for the orchestrator and Prometheus:
 *
 * - `GET /health/live`   200 while the process runs
 * - `GET /health/ready`  200 when the database answers and the relay runs with its producer connected, else 503
 * - `GET /eventlane/status`  cluster-wide backlog and conditions (JSON)
 * - `GET /metrics`       Prometheus text format, or OpenMetrics when asked
 *
 * `EVENTLANE_HTTP_PORT` (default 9464) and `EVENTLANE_HTTP_HOST` (default 0.0.0.0) place the server.
 * SIGTERM or SIGINT stops the relay gracefully (in-flight batch finished, locks released), then the
 * server. From source: `node --conditions=eventlane-source packages/relay-server/src/eventlane-relay.ts`.
 */
import { eventlane } from "@eventlane/fastify";
import Fastify from "fastify";
import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";
import { readFileSync } from "node:fs";
import { createRelay, RelayEnvVariables, relayOptionsFromEnv } from "@eventlane/relay";

/** The conventional port of Prometheus exporters' examples, free of the usual application ports. */
const DEFAULT_HTTP_PORT = 9464;
/** A stop that takes longer than this (a hung broker) ends the process anyway. */
const STOP_DEADLINE_MS = 30_000;

function httpPort(value: string | undefined): number {
  if (value === undefined || value.trim() === "") return DEFAULT_HTTP_PORT;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new Error(`EVENTLANE_HTTP_PORT must be an integer from 0 to 65535; got ${JSON.stringify(value)}`);
  }
  return port;
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

const HELP = `eventlane-relay: publishes the Eventlane outbox to Kafka, configured from the environment.

Usage: eventlane-relay [--help | --version]

Required: EVENTLANE_DATABASE_URL, EVENTLANE_KAFKA_BROKERS, EVENTLANE_RELAY_TOPICS.
Every variable (see the @eventlane/relay README for what each one does):
${Object.values(RelayEnvVariables)
  .map((v) => `  ${v}`)
  .join("\n")}
The HTTP server: EVENTLANE_HTTP_PORT (default ${DEFAULT_HTTP_PORT}), EVENTLANE_HTTP_HOST (default 0.0.0.0);
EVENTLANE_LOG_LEVEL (default info: trace, debug, info, warn, error, fatal).
Routes: GET /health/live, /health/ready, /eventlane/status, /metrics.

Exit codes: 0 after a graceful stop (SIGTERM, SIGINT); 1 on invalid configuration, a failed start,
or a stop that failed or took longer than ${STOP_DEADLINE_MS / 1000} s; 2 on an unknown argument.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(HELP);
    return;
  }
  if (args.includes("--version")) {
    process.stdout.write(`${version()}\n`);
    return;
  }
  if (args.length > 0) {
    process.stderr.write(`eventlane-relay: unknown argument ${JSON.stringify(args[0])}; see --help\n`);
    process.exitCode = 2;
    return;
  }
  const options = relayOptionsFromEnv(process.env);
  const port = httpPort(process.env.EVENTLANE_HTTP_PORT);
  const host = process.env.EVENTLANE_HTTP_HOST?.trim() || "0.0.0.0";

  const relay = createRelay(options);

  // The health and backlog queries get their own two connections, apart from the relay's.
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: 2,
    application_name: "eventlane-relay http",
  });
  pool.on("error", () => {});
  // A checked-out client's socket error has no other listener: without this it ends the process.
  pool.on("connect", (client) => client.on("error", () => {}));
  const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });

  const app = Fastify({ logger: { level: process.env.EVENTLANE_LOG_LEVEL?.trim() || "info" } });
  await app.register(eventlane, {
    db,
    relay,
    ...(options.schema === undefined ? {} : { schema: options.schema }),
    ...(options.tablePrefix === undefined ? {} : { tablePrefix: options.tablePrefix }),
  });
  app.addHook("onClose", async () => {
    await db.destroy();
  });

  relay.on("error", ({ error }) => app.log.error({ error: describeError(error) }, "relay error"));
  relay.on("leader:acquired", ({ shard, epoch }) => app.log.info({ shard, epoch }, "leader acquired"));
  relay.on("leader:lost", ({ shard, epoch, reason }) => app.log.warn({ shard, epoch, reason }, "leader lost"));
  relay.on("publish:failed", ({ shard, reason, backoffMs }) =>
    app.log.warn({ shard, reason, backoffMs }, "publish failed"),
  );
  relay.on("dead-lettered", ({ shard, outboxId, topic, reason }) =>
    app.log.error({ shard, outboxId, topic, reason }, "dead-lettered"),
  );

  let stopping: Promise<void> | undefined;
  const stop = (signal: string) => {
    if (stopping !== undefined) return;
    app.log.info({ signal }, "stopping");
    const deadline = setTimeout(() => {
      app.log.error({ deadlineMs: STOP_DEADLINE_MS }, "stop took too long; exiting");
      process.exit(1);
    }, STOP_DEADLINE_MS);
    deadline.unref();
    stopping = (async () => {
      try {
        await relay.stop();
      } catch (error) {
        process.exitCode = 1;
        app.log.error({ error: describeError(error) }, "relay stop failed");
      }
      await app.close();
      clearTimeout(deadline);
      app.log.info("stopped");
    })();
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));

  // Listen first: liveness answers while the relay starts, readiness says 503 until it runs.
  await app.listen({ port, host });
  try {
    await relay.start();
  } catch (error) {
    app.log.error({ error: describeError(error) }, "relay failed to start");
    process.exitCode = 1;
    await app.close();
    return;
  }
  app.log.info({ instanceId: relay.status().instanceId }, "relay started");
}

main().catch((error: unknown) => {
  // relayOptionsFromEnv's errors name the variable and never echo secret values.
  console.error(`eventlane-relay: ${describeError(error)}`);
  process.exitCode = 1;
});
