/** Seconds as an operator reads them: `850ms`, `12.3s`, `4m 05s`, `3h 12m`, `2d 04h`. */
export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "-";
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const s = Math.floor(seconds);
  const pad = (n: number) => String(n).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d ${pad(Math.floor((s % 86_400) / 3600))}h`;
}

/** How long ago `at` was, from `now`: `4m 05s ago`; `-` for none. */
export function formatAgo(at: Date | null | undefined, now: Date): string {
  if (at === null || at === undefined) return "-";
  return `${formatSeconds((now.getTime() - at.getTime()) / 1000)} ago`;
}

/** A time as ISO 8601 in UTC, `-` for none. */
export function formatTime(at: Date | null | undefined): string {
  return at === null || at === undefined ? "-" : at.toISOString();
}

/** Text cut to `max` characters for a table cell (the full value is in `--json`). */
export function truncate(text: string | null | undefined, max = 60): string {
  if (text === null || text === undefined) return "-";
  const flat = text.replace(/\s+/g, " ");
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

/** `1 dead letter`, `3 dead letters`. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
