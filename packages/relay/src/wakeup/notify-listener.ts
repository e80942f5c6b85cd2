import pg from "pg";

/**
 * LISTENs on the outbox's notify channel on its own session (LISTEN does not survive a pooler in
 * transaction mode either). Resolves once listening; `onClose` fires when the session ends.
 */
export async function listenForNotifications(args: {
  readonly connectionString: string;
  readonly channel: string;
  readonly applicationName: string;
  readonly onNotify: () => void;
  readonly onClose: (error: unknown) => void;
}): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: args.connectionString,
    keepAlive: true,
    application_name: args.applicationName,
  });
  let closed = false;
  const close = (error: unknown) => {
    if (closed) return;
    closed = true;
    args.onClose(error);
  };
  client.on("notification", () => args.onNotify());
  client.on("error", (error) => close(error));
  client.on("end", () => close(new Error("the LISTEN session ended")));
  await client.connect();
  await client.query(`LISTEN "${args.channel}"`);
  return client;
}
