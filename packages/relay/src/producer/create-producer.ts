import type { ResolvedKafkaOptions } from "../options.ts";
import type { ProducerPort } from "./producer-port.ts";

/**
 * The built-in adapter for `kafka.client`. Each client is imported only when chosen, so the package
 * loads with either optional peer installed and the other absent.
 */
export async function createProducer(kafka: ResolvedKafkaOptions): Promise<ProducerPort> {
  if (kafka.client === "platformatic") {
    const { PlatformaticProducer } = await import("./platformatic-producer.ts");
    return new PlatformaticProducer(kafka);
  }
  const { KafkaJsProducer } = await import("./kafkajs-producer.ts");
  return new KafkaJsProducer(kafka);
}
