import type { SendDeadline } from "./producer-port.ts";

/** Kafka's API key of a Produce request. */
export const PRODUCE_API_KEY = 0;

/**
 * The API key of a Kafka request as a client writes it to its socket (`int32 size`, `int16 api_key`,
 * ...), or undefined for anything shorter.
 */
export function requestApiKey(chunk: unknown): number | undefined {
  return Buffer.isBuffer(chunk) && chunk.length >= 6 ? chunk.readInt16BE(4) : undefined;
}

interface RunningSend {
  readonly deadline: SendDeadline | undefined;
  error: Error | undefined;
  readonly refuse: (error: Error) => void;
}

/**
 * The gate of one producer session: asked synchronously right before the client writes a produce
 * request to a socket, whether it may. It may only while a send of the session runs and that send's
 * deadline is open: a produce request written outside a send (a late retry of a send already
 * abandoned) is refused too. A refusal ends the running send at once; the adapter then closes the
 * session, so the client stops retrying.
 *
 * What remains (and what only transactional mode fences): bytes already handed to the socket (in the
 * kernel, on the network, in a proxy), and a process paused between this check and the write that
 * follows it in the same synchronous step.
 */
export class ProduceGate {
  readonly #sends = new Set<RunningSend>();

  /** Whether a produce request may be written now. Never throws; a refusal ends the running sends. */
  mayWriteProduce(): boolean {
    if (this.#sends.size === 0) return false;
    let open = true;
    for (const send of this.#sends) {
      if (send.deadline === undefined || send.deadline.writableMs() > 0) continue;
      open = false;
      send.refuse(send.deadline.closedError());
    }
    return open;
  }

  /**
   * Runs one client send under `deadline`. Refuses to start once the deadline is closed; rejects
   * with the deadline's error as soon as a write is refused or the lease ends with the send still
   * unsettled (re-checked whenever the lease was renewed meanwhile), after `abandon` began closing
   * the session (without waiting for it: a graceful close may wait for the very request that hangs).
   */
  async run(
    deadline: SendDeadline | undefined,
    send: () => Promise<void>,
    abandon: (client: Promise<void>) => void,
  ): Promise<void> {
    if (deadline !== undefined && deadline.writableMs() <= 0) throw deadline.closedError();
    let reject: (error: Error) => void = () => undefined;
    const refused = new Promise<never>((_, r) => {
      reject = r;
    });
    const running: RunningSend = {
      deadline,
      error: undefined,
      refuse: (error) => {
        if (running.error !== undefined) return;
        running.error = error;
        reject(error);
      },
    };
    this.#sends.add(running);
    let timer: NodeJS.Timeout | undefined;
    if (deadline !== undefined) {
      const settle = () => {
        const ms = deadline.settleMs();
        if (ms <= 0) {
          running.refuse(deadline.closedError());
          return;
        }
        timer = setTimeout(settle, Math.ceil(ms));
        timer.unref();
      };
      settle();
    }
    let client: Promise<void> | undefined;
    try {
      client = send();
      await Promise.race([client, refused]);
    } catch (error) {
      if (running.error === undefined) throw error;
      if (client !== undefined) {
        client.catch(() => undefined);
        abandon(client);
      }
      throw running.error;
    } finally {
      clearTimeout(timer);
      this.#sends.delete(running);
    }
  }
}
