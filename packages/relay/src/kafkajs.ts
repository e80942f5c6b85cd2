/**
 * `@eventlane/relay/kafkajs`: the kafkajs producer adapter and its error classifier, for tests and
 * custom wiring. The main entry does not export them, so importing `@eventlane/relay` never loads
 * kafkajs (an install with only @platformatic/kafka works).
 */
export { classifyKafkaJsError } from "./producer/classify-kafkajs-error.ts";
export { KafkaJsProducer } from "./producer/kafkajs-producer.ts";
