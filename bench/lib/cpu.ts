import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const TICK_MS = 10; // USER_HZ = 100 on Linux

function procTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime, stime are fields 14 and 15 of stat (index 11, 12 after the command name)
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

function processesNamed(name: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === name) out.push(Number(entry));
    } catch {
      // the process ended
    }
  }
  return out;
}

function brokerPid(): number | undefined {
  const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../.var/kafka-9092/pid");
  try {
    return Number(readFileSync(file, "utf8").trim());
  } catch {
    return undefined;
  }
}

export interface CpuSample {
  readonly at: number;
  readonly node: number;
  readonly postgres: Map<number, number>;
  readonly broker: number;
}

/** CPU time (ms) used so far by this Node process, every PostgreSQL process and the Kafka broker. */
export function sampleCpu(): CpuSample {
  const postgres = new Map<number, number>();
  for (const pid of processesNamed("postgres")) postgres.set(pid, procTicks(pid) * TICK_MS);
  const broker = brokerPid();
  return {
    at: performance.now(),
    node: procTicks(process.pid) * TICK_MS,
    postgres,
    broker: broker === undefined ? 0 : procTicks(broker) * TICK_MS,
  };
}

export interface CpuShare {
  readonly wallMs: number;
  /** CPU milliseconds used in the interval. */
  readonly nodeMs: number;
  readonly postgresMs: number;
  readonly brokerMs: number;
  /** Share of the machine's total CPU capacity (cores x wall time), 0..1 each. */
  readonly nodeShare: number;
  readonly postgresShare: number;
  readonly brokerShare: number;
  readonly idleOrOtherShare: number;
}

/** How the cores were shared between `from` and `to`. New PostgreSQL backends count from zero. */
export function cpuShare(from: CpuSample, to: CpuSample, cores: number): CpuShare {
  const wallMs = to.at - from.at;
  let postgresMs = 0;
  for (const [pid, ms] of to.postgres) postgresMs += ms - (from.postgres.get(pid) ?? 0);
  const nodeMs = to.node - from.node;
  const brokerMs = to.broker - from.broker;
  const capacity = wallMs * cores;
  const r = (x: number) => Number((x / capacity).toFixed(3));
  return {
    wallMs: Math.round(wallMs),
    nodeMs,
    postgresMs,
    brokerMs,
    nodeShare: r(nodeMs),
    postgresShare: r(postgresMs),
    brokerShare: r(brokerMs),
    idleOrOtherShare: Number(Math.max(0, 1 - (nodeMs + postgresMs + brokerMs) / capacity).toFixed(3)),
  };
}
