import { describe, expect, it } from "vitest";
import { ProduceGate, requestApiKey } from "../src/producer/produce-gate.ts";
import type { SendDeadline } from "../src/producer/producer-port.ts";

/** A deadline the test moves: `writable` and `settle` are the ms left, read at each call. */
function movable(writable: number, settle: number) {
  const error = new Error("closed");
  const state = { writable, settle };
  const deadline: SendDeadline = {
    writableMs: () => state.writable,
    settleMs: () => state.settle,
    closedError: () => error,
  };
  return { state, deadline, error };
}

const never = () => new Promise<void>(() => undefined);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("the produce gate of a producer session", () => {
  it("lets produce requests through only while a send runs and its deadline is open", async () => {
    const gate = new ProduceGate();
    // No send running: a produce request then could only be a late retry of a send already given up.
    expect(gate.mayWriteProduce()).toBe(false);
    const { deadline } = movable(1000, 2000);
    const seen: boolean[] = [];
    await gate.run(
      deadline,
      async () => {
        seen.push(gate.mayWriteProduce());
      },
      () => undefined,
    );
    expect(seen).toEqual([true]);
    expect(gate.mayWriteProduce()).toBe(false);
    // Without a deadline (a caller outside the relay), a send is unbounded.
    await gate.run(
      undefined,
      async () => {
        seen.push(gate.mayWriteProduce());
      },
      () => undefined,
    );
    expect(seen).toEqual([true, true]);
  });

  it("refuses to start a send whose deadline is closed", async () => {
    const gate = new ProduceGate();
    const { deadline, error } = movable(0, 1000);
    let started = false;
    await expect(
      gate.run(
        deadline,
        async () => {
          started = true;
        },
        () => undefined,
      ),
    ).rejects.toBe(error);
    expect(started).toBe(false);
  });

  it("a refused write ends the send at once with the deadline's error, and the session is abandoned", async () => {
    const gate = new ProduceGate();
    const { state, deadline, error } = movable(1000, 60_000);
    const abandoned: Promise<void>[] = [];
    const client = never();
    const run = gate.run(
      deadline,
      () => client,
      (c) => abandoned.push(c),
    );
    expect(gate.mayWriteProduce()).toBe(true);
    state.writable = 0;
    expect(gate.mayWriteProduce()).toBe(false);
    await expect(run).rejects.toBe(error);
    expect(abandoned).toEqual([client]);
    expect(gate.mayWriteProduce()).toBe(false);
  });

  it("a send still unsettled at the lease end is abandoned; a renewal meanwhile postpones it", async () => {
    const gate = new ProduceGate();
    const { state, deadline, error } = movable(50, 100);
    const abandoned: Promise<void>[] = [];
    const started = performance.now();
    const run = gate.run(deadline, never, (c) => abandoned.push(c));
    // A heartbeat renews the lease before the first check: the send goes on.
    state.writable = 100;
    state.settle = 150;
    await sleep(130);
    expect(abandoned).toEqual([]);
    // No renewal any more: the lease ends with the send unsettled.
    state.writable = 0;
    state.settle = 0;
    await expect(run).rejects.toBe(error);
    expect(abandoned).toHaveLength(1);
    expect(performance.now() - started).toBeGreaterThanOrEqual(200);
  });

  it("reads the API key of a request as written to a socket", () => {
    const produce = Buffer.from([0, 0, 0, 10, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0]);
    const metadata = Buffer.from([0, 0, 0, 10, 0, 3, 0, 12, 0, 0, 0, 2, 0, 0]);
    expect(requestApiKey(produce)).toBe(0);
    expect(requestApiKey(metadata)).toBe(3);
    expect(requestApiKey(Buffer.from([0, 0]))).toBeUndefined();
    expect(requestApiKey("not a buffer")).toBeUndefined();
  });
});
