import { InvalidOptionError } from "../errors.ts";

/*
 * The option-validation kit every Eventlane package resolves its options with: each check throws
 * `InvalidOptionError` (code `EVENTLANE_INVALID_OPTION`) whose `option` names the field and whose
 * message says what is expected and what was given. Unknown keys are refused everywhere.
 */

/**
 * Throws {@link InvalidOptionError} naming the first key of `options` that is not in `known` (a typo
 * such as `shema` would otherwise be ignored in silence), or when `options` is not an object.
 * `what` names the options in the message: `unknown ${what} option "shema"`.
 */
export function refuseUnknownOptions(options: unknown, known: readonly string[], what: string): void {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new InvalidOptionError({
      option: "options",
      message: `${what} options must be an object; got ${options === null ? "null" : Array.isArray(options) ? "an array" : typeof options}`,
    });
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new InvalidOptionError({
        option: key,
        message: `unknown ${what} option "${key}"; known: ${known.join(", ")}`,
      });
    }
  }
}

/** Throws {@link InvalidOptionError} for `option`, its message prefixed with the option's name. */
export function invalidOption(option: string, message: string): never {
  throw new InvalidOptionError({ option, message: `${option}: ${message}` });
}

/** How a value reads in an error message (never a secret: callers do not pass those). */
export function describeValue(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "function") return "a function";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/** A nested options object (`kafka`, `thresholds`, ...): an object whose keys are all in `known`. */
export function optionSection(path: string, value: unknown, known: readonly string[]): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    invalidOption(path, `must be an object; got ${describeValue(value)}`);
  }
  for (const key of Object.keys(value as object)) {
    if (!known.includes(key)) invalidOption(`${path}.${key}`, `unknown option; known: ${known.join(", ")}`);
  }
  return value as Record<string, unknown>;
}

/** An integer option in [min, max]; `fallback` when undefined. */
export function integerOption(option: string, value: unknown, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    invalidOption(option, `must be an integer in [${min}, ${max}]; got ${describeValue(value)}`);
  }
  return v as number;
}

/** One of `allowed`; `fallback` when undefined. */
export function oneOfOption<T extends string>(option: string, value: unknown, allowed: readonly T[], fallback: T): T {
  const v = value ?? fallback;
  if (!allowed.includes(v as T))
    invalidOption(option, `must be one of ${allowed.join(", ")}; got ${describeValue(value)}`);
  return v as T;
}

/** A boolean; `fallback` when undefined. */
export function booleanOption(option: string, value: unknown, fallback: boolean): boolean {
  const v = value ?? fallback;
  if (typeof v !== "boolean") invalidOption(option, `must be a boolean; got ${describeValue(value)}`);
  return v as boolean;
}

/** A non-empty string of at most `max` characters. */
export function stringOption(option: string, value: unknown, max = 249): string {
  if (typeof value !== "string" || value.length === 0 || value.length > max) {
    invalidOption(option, `must be a non-empty string of at most ${max} characters; got ${describeValue(value)}`);
  }
  return value as string;
}
