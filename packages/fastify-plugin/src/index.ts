export {
  eventlane,
  eventlane as default,
  type EventlaneDatabase,
  type EventlaneDecoration,
  type EventlaneFastifyTypes,
} from "./plugin.ts";
export {
  DEFAULTS,
  resolvePluginOptions,
  type EventlaneBacklogOptions,
  type EventlaneMetricsOptions,
  type EventlanePluginOptions,
  type EventlaneReadinessOptions,
  type EventlaneRouteHook,
  type EventlaneRoutesOptions,
  type EventlaneStatusOptions,
  type EventlaneThresholdsOptions,
  type ResolvedEventlanePluginOptions,
} from "./options.ts";
// The relay's contract, shared with @eventlane/relay (which implements it), under the plugin's names.
export {
  PublishFailureReasons,
  RelayEventNames,
  type PublishFailureReason,
  type RelayEventName as EventlaneRelayEventName,
  type RelayEvents as EventlaneRelayEvents,
  type RelayHandle as EventlaneRelayHandle,
  type RelayShardStatus as EventlaneRelayShardStatus,
  type RelayStatusSnapshot as EventlaneRelayStatus,
} from "@eventlane/core/internal";
export {
  ConsumerEventOutcomes,
  type ConsumerEventOutcome,
  type EventlaneConsumerHandle,
  type EventlaneConsumerPartitionLag,
  type EventlaneConsumerStats,
} from "./consumer-handle.ts";
export type { ReadinessCheck, ReadinessCheckName, ReadinessReport } from "./health/readiness.ts";
export {
  StatusConditionNames,
  type EventlaneConsumerStatus,
  type EventlaneStatus,
  type ResolvedStatusThresholds,
  type StatusCondition,
  type StatusConditionName,
} from "./status/status-report.ts";
export type { BacklogSnapshot, ShardBacklog } from "./backlog/backlog-query.ts";
export { negotiateFormat, type ExpositionFormat } from "./metrics/exposition.ts";
export { BATCH_DURATION_BUCKETS, COMMIT_TO_PUBLISH_BUCKETS } from "./metrics/relay-metrics.ts";
