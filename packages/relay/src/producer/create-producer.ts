import type { ResolvedKafkaOptions } from "../options.ts";
import { KafkaJsProducer } from "./kafkajs-producer.ts";
import type { ProducerPort } from "./producer-port.ts";

/**
 * The built-in adapter for `kafka.client`. @platformatic/kafka is imported only when chosen, so the
 * package loads without that optional peer installed.
 */
export async function createProducer(kafka: ResolvedKafkaOptions): Promise<ProducerPort> {
  if (kafka.client === "platformatic") {
    const { PlatformaticProducer } = await import("./platformatic-producer.ts");
    return new PlatformaticProducer(kafka);
  }
  return new KafkaJsProducer(kafka);
}
