import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { RelayOptions } from "../src/index.ts";

const fixture = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures", "relay-process.ts");

export interface ProcessLine {
  readonly t: string;
  readonly at: number;
  readonly [k: string]: unknown;
}

/** A relay running in a child process; its JSON lines are collected in `lines`. */
export interface ProcessRelay {
  readonly child: ChildProcess;
  readonly lines: ProcessLine[];
  readonly name: string;
  waitFor(predicate: (l: ProcessLine) => boolean, timeoutMs?: number): Promise<ProcessLine>;
  kill(signal: NodeJS.Signals): void;
  exited: Promise<void>;
}

export function spawnRelay(name: string, options: Omit<RelayOptions, "producer">): ProcessRelay {
  const child = spawn(
    process.execPath,
    ["--conditions=eventlane-source", "--no-warnings", fixture, JSON.stringify(options)],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const lines: ProcessLine[] = [];
  const waiters = new Set<() => void>();
  let buffer = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    let i = buffer.indexOf("\n");
    while (i >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      try {
        lines.push(JSON.parse(line) as ProcessLine);
      } catch {
        // not ours
      }
      i = buffer.indexOf("\n");
    }
    for (const w of [...waiters]) w();
  });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  return {
    child,
    lines,
    name,
    exited,
    kill: (signal) => child.kill(signal),
    waitFor(predicate, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.find(predicate);
          if (hit !== undefined) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${name}: timed out waiting; stderr: ${stderr.slice(-2000)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
  };
}
