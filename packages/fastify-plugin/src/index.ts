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
export {
  PublishFailureReasons,
  RelayEventNames,
  type EventlaneRelayEventName,
  type EventlaneRelayEvents,
  type EventlaneRelayHandle,
  type EventlaneRelayShardStatus,
  type EventlaneRelayStatus,
  type PublishFailureReason,
} from "./relay-handle.ts";
export type { ReadinessCheck, ReadinessCheckName, ReadinessReport } from "./health/readiness.ts";
export {
  StatusConditionNames,
  type EventlaneStatus,
  type ResolvedStatusThresholds,
  type StatusCondition,
  type StatusConditionName,
} from "./status/status-report.ts";
export type { BacklogSnapshot, ShardBacklog } from "./backlog/backlog-query.ts";
export { negotiateFormat, type ExpositionFormat } from "./metrics/exposition.ts";
export { BATCH_DURATION_BUCKETS, COMMIT_TO_PUBLISH_BUCKETS } from "./metrics/relay-metrics.ts";
