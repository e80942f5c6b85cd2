/** Where the test services are. Override with EVENTLANE_TEST_PG / EVENTLANE_TEST_KAFKA. */
export const pgAdminUrl = process.env.EVENTLANE_TEST_PG ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const kafkaBrokers = (process.env.EVENTLANE_TEST_KAFKA ?? "127.0.0.1:9092").split(",");

/** A short random suffix for names that must not collide between parallel test files. */
export function uniqueSuffix(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
}
