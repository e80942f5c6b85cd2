const encoder = new TextEncoder();

/**
 * Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`, seed 0x9747b28c) of the UTF-8
 * bytes of `key`, as a signed 32-bit integer. The Java client's and kafkajs's default partitioners
 * pick `toPositive(murmur2(key)) % partitions` (`toPositive` = `& 0x7fffffff`). @platformatic/kafka's
 * default uses `>>> 0` instead, which puts about half the keys elsewhere when the partition count is
 * not a power of two, so the relay gives it this partitioner. Eventlane uses the same hash to map keys
 * to relay shards, stored in `outbox.key_hash`.
 */
export function murmur2(key: string | Uint8Array): number {
  const data = typeof key === "string" ? encoder.encode(key) : key;
  const length = data.length;
  const m = 0x5bd1e995;
  const r = 24;
  let h = (0x9747b28c ^ length) | 0;
  const length4 = length >>> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k =
      (data[i4]! & 0xff) +
      ((data[i4 + 1]! & 0xff) << 8) +
      ((data[i4 + 2]! & 0xff) << 16) +
      ((data[i4 + 3]! & 0xff) << 24);
    k = Math.imul(k, m);
    k ^= k >>> r;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = length & ~3;
  const rest = length % 4;
  // The Java original falls through cases 3, 2, 1.
  if (rest >= 3) h ^= (data[tail + 2]! & 0xff) << 16;
  if (rest >= 2) h ^= (data[tail + 1]! & 0xff) << 8;
  if (rest >= 1) {
    h ^= data[tail]! & 0xff;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}

/** `toPositive(hash) % n`, as Kafka's partitioner computes it. */
export function positiveModulo(hash: number, n: number): number {
  return (hash & 0x7fffffff) % n;
}
