/**
 * Removes secrets from text before it is printed: each connection string given to the CLI, its
 * password, and the SASL password. Messages of pg and kafkajs name hosts and users, never these, but
 * an echoed argument or a driver message could; nothing the CLI prints passes around this.
 */
export class Redactor {
  readonly #secrets: string[] = [];

  /** Registers a connection string: the whole string and its password are redacted. */
  addConnectionString(url: string | undefined): void {
    if (url === undefined || url === "") return;
    this.#secrets.push(url);
    try {
      const u = new URL(url);
      this.addSecret(u.password);
      this.addSecret(decodeURIComponent(u.password));
    } catch {
      // Not a URL (a libpq key=value string): its password=... part is redacted by pattern below.
    }
  }

  /**
   * Registers a plain secret (a SASL password). Secrets shorter than 4 characters are not searched
   * for alone (they would blank out ordinary words); the strings that contain them still are.
   */
  addSecret(secret: string | undefined): void {
    if (secret !== undefined && secret.length >= 4) this.#secrets.push(secret);
  }

  redact(text: string): string {
    let out = text;
    // Longest first, so a URL is replaced whole before its password alone.
    for (const s of [...new Set(this.#secrets)].sort((a, b) => b.length - a.length)) {
      if (s.length > 0) out = out.split(s).join("[redacted]");
    }
    return out.replace(/(password\s*=\s*)('[^']*'|\S+)/gi, "$1[redacted]");
  }
}
