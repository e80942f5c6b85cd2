import net from "node:net";

/** What the proxy does with traffic. */
export type FaultMode = "pass" | "blackhole" | "refuse";

export interface FaultProxy {
  /** The port the proxy listens on, on 127.0.0.1. */
  readonly port: number;
  /** Resets every open connection (both sides see an error at once). New connections still pass. */
  cut(): void;
  /**
   * Accepts and keeps connections but forwards nothing in either direction, like a network partition
   * that drops packets: neither side learns the other is gone until its own timeouts fire.
   */
  blackhole(): void;
  /** Refuses new connections (closes them on accept) and cuts open ones: the service is "down". */
  refuse(): void;
  /** Adds `ms` of delay to every chunk in both directions (0 to remove). */
  delay(ms: number): void;
  /** Back to forwarding normally. Connections that were blackholed stay dead; new ones pass. */
  heal(): void;
  /** Number of currently open client connections. */
  connections(): number;
  close(): Promise<void>;
}

interface Pair {
  readonly client: net.Socket;
  readonly upstream: net.Socket;
  blackholed: boolean;
}

/**
 * A small TCP proxy a test puts between a client and PostgreSQL or Kafka, to cut, blackhole, refuse
 * or delay the connection without touching the shared service.
 */
export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let mode: FaultMode = "pass";
  let delayMs = 0;
  const pairs = new Set<Pair>();

  const forward = (pair: Pair, from: net.Socket, to: net.Socket) => {
    from.on("data", (chunk) => {
      if (pair.blackholed) return;
      if (delayMs > 0) setTimeout(() => to.writable && to.write(chunk), delayMs);
      else if (to.writable) to.write(chunk);
    });
  };

  const server = net.createServer((client) => {
    if (mode === "refuse") {
      client.destroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    const pair: Pair = { client, upstream, blackholed: mode === "blackhole" };
    pairs.add(pair);
    forward(pair, client, upstream);
    forward(pair, upstream, client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end);
    upstream.on("error", end);
    client.on("close", () => {
      if (!pair.blackholed) end();
    });
    upstream.on("close", () => {
      if (!pair.blackholed) end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("fault proxy did not bind");

  const cutAll = () => {
    for (const pair of pairs) {
      pair.client.resetAndDestroy();
      pair.upstream.resetAndDestroy();
    }
    pairs.clear();
  };

  return {
    port: address.port,
    cut: cutAll,
    blackhole() {
      mode = "blackhole";
      for (const pair of pairs) pair.blackholed = true;
    },
    refuse() {
      mode = "refuse";
      cutAll();
    },
    delay(ms) {
      delayMs = ms;
    },
    heal() {
      mode = "pass";
      delayMs = 0;
    },
    connections: () => pairs.size,
    close: () =>
      new Promise<void>((resolve) => {
        cutAll();
        for (const pair of pairs) {
          pair.client.destroy();
          pair.upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
