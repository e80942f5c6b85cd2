import net from "node:net";

/** Kafka's API key of a Metadata request. */
const METADATA_API_KEY = 3;

export interface AdvertisingProxy {
  /** The port to give a client as its bootstrap broker, on 127.0.0.1. */
  readonly port: number;
  close(): Promise<void>;
}

/** Reads an unsigned varint at `offset`: [value, bytes read]. */
function readUnsignedVarint(buffer: Buffer, offset: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (let i = 0; ; i++) {
    const byte = buffer[offset + i]!;
    value |= (byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return [value >>> 0, i + 1];
    shift += 7;
  }
}

/** Skips a block of tagged fields at `offset`; returns the offset after it. */
function skipTaggedFields(buffer: Buffer, offset: number): number {
  let [count, at] = readUnsignedVarint(buffer, offset);
  at += offset;
  for (let i = 0; i < count; i++) {
    const [, tagBytes] = readUnsignedVarint(buffer, at);
    at += tagBytes;
    const [size, sizeBytes] = readUnsignedVarint(buffer, at);
    at += sizeBytes + size;
  }
  return at;
}

/**
 * Rewrites, in place, the port of every broker of a Metadata response (a whole frame, size prefix
 * included) that advertises `from` to `to`. Versions 0 to 12: flexible (compact) encoding from v9.
 */
function rewriteMetadataResponse(frame: Buffer, version: number, from: number, to: number): void {
  const flexible = version >= 9;
  let at = 8; // size, correlation id
  if (flexible) at = skipTaggedFields(frame, at);
  if (version >= 3) at += 4; // throttle_time_ms
  let brokers: number;
  if (flexible) {
    const [n, bytes] = readUnsignedVarint(frame, at);
    brokers = n - 1;
    at += bytes;
  } else {
    brokers = frame.readInt32BE(at);
    at += 4;
  }
  for (let i = 0; i < brokers; i++) {
    at += 4; // node_id
    if (flexible) {
      const [n, bytes] = readUnsignedVarint(frame, at);
      at += bytes + n - 1;
    } else {
      at += 2 + frame.readInt16BE(at);
    }
    if (frame.readInt32BE(at) === from) frame.writeInt32BE(to, at);
    at += 4;
    if (version >= 1) {
      if (flexible) {
        const [n, bytes] = readUnsignedVarint(frame, at);
        at += bytes + Math.max(0, n - 1);
      } else {
        const length = frame.readInt16BE(at);
        at += 2 + Math.max(0, length);
      }
    }
    if (flexible) at = skipTaggedFields(frame, at);
  }
}

/** Splits a byte stream into Kafka frames (int32 size prefix); calls `onFrame` with each whole one. */
function framer(onFrame: (frame: Buffer) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
      const size = pending.readInt32BE(0);
      if (pending.length < 4 + size) break;
      onFrame(Buffer.from(pending.subarray(0, 4 + size)));
      pending = pending.subarray(4 + size);
    }
  };
}

/**
 * A Kafka-aware TCP proxy for tests: forwards every connection to `upstream` (a fault proxy in front
 * of the broker, say) and rewrites the broker addresses in Metadata responses from the broker's port
 * to its own, so that every connection a client opens, not only the bootstrap one, goes through
 * `upstream` and its faults. (A plain TCP proxy only carries the bootstrap connection: the broker
 * advertises its own address.) Only for a single broker on 127.0.0.1.
 */
export async function startAdvertisingProxy(
  upstream: { readonly host: string; readonly port: number },
  brokerPort: number,
): Promise<AdvertisingProxy> {
  const sockets = new Set<net.Socket>();
  let ownPort = 0;
  const server = net.createServer((client) => {
    const server = net.connect(upstream.port, upstream.host);
    sockets.add(client);
    sockets.add(server);
    const versions = new Map<number, { apiKey: number; apiVersion: number }>();
    client.on(
      "data",
      framer((frame) => {
        versions.set(frame.readInt32BE(8), { apiKey: frame.readInt16BE(4), apiVersion: frame.readInt16BE(6) });
        if (server.writable) server.write(frame);
      }),
    );
    server.on(
      "data",
      framer((frame) => {
        const correlationId = frame.readInt32BE(4);
        const request = versions.get(correlationId);
        versions.delete(correlationId);
        if (request?.apiKey === METADATA_API_KEY) {
          rewriteMetadataResponse(frame, request.apiVersion, brokerPort, ownPort);
        }
        if (client.writable) client.write(frame);
      }),
    );
    let ended = false;
    // Either side gone: the client sees a reset at once, as if the broker had dropped the connection.
    const end = () => {
      if (ended) return;
      ended = true;
      sockets.delete(client);
      sockets.delete(server);
      if (client.destroyed) client.destroy();
      else client.resetAndDestroy();
      server.destroy();
    };
    for (const s of [client, server]) {
      s.on("error", end);
      s.on("close", end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the advertising proxy did not bind");
  ownPort = address.port;
  return {
    port: ownPort,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
