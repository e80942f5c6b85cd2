import { parseArgs } from "node:util";
import { UsageError } from "../errors.ts";

/** One flag of a command: parsed by `node:util` `parseArgs`, listed by `--help` and the README. */
export interface OptionSpec {
  /** The long name, without `--`. */
  readonly name: string;
  readonly type: "string" | "boolean";
  /** May be given more than once (values collected in order). */
  readonly multiple?: boolean;
  /** The placeholder of the value in help (`<url>`). */
  readonly value?: string;
  /** The environment variable read when the flag is absent. */
  readonly env?: string;
  readonly description: string;
}

/** What `parse` returns: flag values by name and the positional arguments. */
export interface ParsedArgs {
  readonly values: Readonly<Record<string, string | boolean | readonly string[] | undefined>>;
  readonly positionals: readonly string[];
}

/** `--help`, which every command takes. */
export const HELP_OPTION: OptionSpec = { name: "help", type: "boolean", description: "print this help and exit" };

/**
 * Parses a command's arguments strictly: an unknown flag, a flag without its value, a value given to
 * a boolean flag or too many positionals is a {@link UsageError} naming it.
 */
export function parse(
  command: string,
  specs: readonly OptionSpec[],
  args: readonly string[],
  positionals: { readonly min: number; readonly max: number; readonly name?: string },
): ParsedArgs {
  const known = new Map(specs.map((s) => [s.name, s]));
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {};
  for (const s of specs) {
    options[s.name] = { type: s.type, ...(s.multiple === true ? { multiple: true } : {}) };
  }
  if (known.has(HELP_OPTION.name)) options[HELP_OPTION.name] = { type: "boolean", short: "h" };
  // A lenient pass first, to name an unknown or malformed flag in our own words.
  const { tokens } = parseArgs({ args: [...args], options, strict: false, allowPositionals: true, tokens: true });
  const seen = new Map<string, number>();
  for (const t of tokens) {
    if (t.kind !== "option") continue;
    const spec =
      t.rawName === "-h" ? known.get(HELP_OPTION.name) : t.rawName.startsWith("--") ? known.get(t.name) : undefined;
    if (spec === undefined) {
      throw new UsageError({ message: `unknown option ${t.rawName}; see eventlane ${command} --help` });
    }
    if (spec.type === "string" && (t.value === undefined || (t.inlineValue !== true && t.value.startsWith("--")))) {
      throw new UsageError({ message: `--${spec.name} needs a value (${spec.value ?? "<value>"})` });
    }
    if (spec.type === "boolean" && t.inlineValue === true) {
      throw new UsageError({ message: `--${spec.name} takes no value` });
    }
    const count = (seen.get(spec.name) ?? 0) + 1;
    seen.set(spec.name, count);
    if (count > 1 && spec.multiple !== true) {
      throw new UsageError({ message: `--${spec.name} given more than once` });
    }
  }
  let parsed: ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: [...args], options, strict: true, allowPositionals: true });
  } catch (error) {
    // The options are ours and valid, so whatever parseArgs refuses is in the command line.
    throw new UsageError({
      message: `${error instanceof Error ? error.message : String(error)}; see eventlane ${command} --help`,
    });
  }
  const n = parsed.positionals.length;
  if (n < positionals.min || n > positionals.max) {
    const what = positionals.name ?? "argument";
    const expected =
      positionals.max === 0
        ? "no arguments"
        : positionals.min === positionals.max
          ? `${positionals.min} ${what}`
          : positionals.max === Number.POSITIVE_INFINITY
            ? `at least ${positionals.min} ${what}`
            : `${positionals.min} to ${positionals.max} ${what}s`;
    const got = n === 0 ? "none" : parsed.positionals.map((p) => JSON.stringify(p)).join(" ");
    throw new UsageError({ message: `expected ${expected}, got ${got}; see eventlane ${command} --help` });
  }
  return { values: parsed.values as ParsedArgs["values"], positionals: parsed.positionals };
}

/** A string flag's value, else its environment variable, else undefined. Blank values count as absent. */
export function stringValue(
  parsed: ParsedArgs,
  spec: OptionSpec,
  env: Readonly<Record<string, string | undefined>>,
): string | undefined {
  const v = parsed.values[spec.name];
  if (typeof v === "string" && v.trim() !== "") return v.trim();
  if (spec.env !== undefined) {
    const e = env[spec.env]?.trim();
    if (e !== undefined && e !== "") return e;
  }
  return undefined;
}

/** The help block of a list of flags, aligned. */
export function optionsHelp(specs: readonly OptionSpec[]): string {
  const left = specs.map((s) => `  --${s.name}${s.type === "string" ? ` ${s.value ?? "<value>"}` : ""}`);
  const width = Math.max(...left.map((l) => l.length)) + 2;
  return specs
    .map((s, i) => {
      const env = s.env === undefined ? "" : ` (env ${s.env})`;
      const repeat = s.multiple === true ? " (repeatable)" : "";
      return `${left[i]!.padEnd(width)}${s.description}${repeat}${env}`;
    })
    .join("\n");
}
