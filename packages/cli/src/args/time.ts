import { UsageError } from "../errors.ts";

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Parses a duration such as `90s`, `15m`, `1h30m`, `2d`, `500ms` into milliseconds. */
export function parseDuration(flag: string, text: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g;
  let total = 0;
  let consumed = 0;
  for (const m of text.trim().matchAll(re)) {
    if (m.index !== consumed) break;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    consumed += m[0].length;
  }
  if (consumed === 0 || consumed !== text.trim().length) {
    throw new UsageError({
      message: `--${flag}: ${JSON.stringify(text)} is not a duration (a number and a unit: ms, s, m, h, d, w; e.g. 90s, 1h30m, 2d)`,
    });
  }
  return total;
}

/**
 * Parses a point in time: an ISO 8601 date or time (`2025-03-01`, `2025-03-01T12:00:00Z`) or a
 * duration meaning that long before `now` (`2h` = two hours ago).
 */
export function parseTime(flag: string, text: string, now: Date): Date {
  const t = text.trim();
  if (/^\d{4}-\d{2}-\d{2}/.test(t)) {
    const d = new Date(t);
    if (!Number.isNaN(d.getTime())) return d;
    throw new UsageError({ message: `--${flag}: ${JSON.stringify(text)} is not a valid ISO 8601 time` });
  }
  return new Date(now.getTime() - parseDuration(flag, t));
}

/** Parses a positive integer flag (`--limit`). */
export function parsePositiveInteger(flag: string, text: string, max = 1_000_000): number {
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1 || Number(text) > max) {
    throw new UsageError({ message: `--${flag}: must be an integer from 1 to ${max}; got ${JSON.stringify(text)}` });
  }
  return Number(text);
}

/** Parses an outbox id flag or argument (a positive bigint, kept as its decimal text). */
export function parseOutboxId(what: string, text: string): string {
  if (!/^[1-9]\d{0,18}$/.test(text.trim())) {
    throw new UsageError({ message: `${what}: ${JSON.stringify(text)} is not an outbox id (a positive integer)` });
  }
  return text.trim();
}
