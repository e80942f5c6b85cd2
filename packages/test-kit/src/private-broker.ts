import { execFile } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
const scripts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../scripts/kafka");

export interface PrivateBroker {
  readonly port: number;
  readonly brokers: readonly string[];
  /** Stops the broker process (SIGTERM, then SIGKILL), keeping its data. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** Stops it and deletes its data. */
  destroy(): Promise<void>;
}

async function freePortPair(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => {
        const a = s.address();
        s.close(() => resolve(typeof a === "object" && a !== null ? a.port : 0));
      });
    });
    if (port > 0 && port < 65000) {
      const next = await new Promise<boolean>((resolve) => {
        const s = net.createServer();
        s.once("error", () => resolve(false));
        s.listen(port + 1, "127.0.0.1", () => s.close(() => resolve(true)));
      });
      if (next) return port;
    }
  }
}

/**
 * Starts a Kafka broker of this test file's own, on a free port, for tests that stop and start the
 * broker: the shared broker on 9092 is never stopped, so other files running beside are unaffected.
 */
export async function startPrivateBroker(): Promise<PrivateBroker> {
  const port = await freePortPair();
  const env = { ...process.env, KAFKA_PORT: String(port), KAFKA_HEAP: "384m" };
  const start = async () => {
    await run("bash", [path.join(scripts, "start.sh")], { env, timeout: 120_000 });
  };
  const stop = async () => {
    await run("bash", [path.join(scripts, "stop.sh")], { env, timeout: 60_000 });
  };
  await start();
  return {
    port,
    brokers: [`127.0.0.1:${port}`],
    start,
    stop,
    destroy: async () => {
      await stop();
      await run("bash", [path.join(scripts, "stop.sh"), "--purge"], { env, timeout: 60_000 });
    },
  };
}
