export { kafkaBrokers, pgAdminUrl, uniqueSuffix } from "./env.ts";
export { createTestDatabase, type TestDatabase } from "./database.ts";
export {
  createTopics,
  deleteTopics,
  readTopic,
  testKafka,
  uniqueTopic,
  type ReadMessage,
  type TopicSpec,
} from "./kafka.ts";
export { startFaultProxy, type FaultMode, type FaultProxy } from "./fault-proxy.ts";
export { startPrivateBroker, type PrivateBroker } from "./private-broker.ts";
export { waitFor } from "./wait-for.ts";
