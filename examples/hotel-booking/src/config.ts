/** Where the example's processes find PostgreSQL, Kafka and each other. Read once, from the environment. */
export interface HotelConfig {
  /** `EVENTLANE_DATABASE_URL`. The API, the relay and (in this example) the consumers share one database; each consumer keeps its tables in its own schemas. */
  readonly databaseUrl: string;
  /** `EVENTLANE_KAFKA_BROKERS`, a comma list. */
  readonly brokers: readonly string[];
  /** `HOTEL_BOOKINGS_TOPIC`: where booking events go. */
  readonly bookingsTopic: string;
  /** `HOTEL_BOOKINGS_PARTITIONS`: partitions of the topic when setup creates it. */
  readonly bookingsPartitions: number;
  /** `PORT`: the API's HTTP port. */
  readonly port: number;
  /** `HOST`: the API's bind address. */
  readonly host: string;
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): HotelConfig {
  const int = (name: string, fallback: number) => {
    const v = env[name];
    if (v === undefined || v === "") return fallback;
    if (!/^\d+$/.test(v)) throw new Error(`${name} must be a non-negative integer; got ${JSON.stringify(v)}`);
    return Number(v);
  };
  return Object.freeze({
    databaseUrl: env.EVENTLANE_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/eventlane_hotel",
    brokers: (env.EVENTLANE_KAFKA_BROKERS ?? "127.0.0.1:9092")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
    bookingsTopic: env.HOTEL_BOOKINGS_TOPIC ?? "hotel.bookings",
    bookingsPartitions: int("HOTEL_BOOKINGS_PARTITIONS", 3),
    port: int("PORT", 3000),
    host: env.HOST ?? "127.0.0.1",
  });
}

/** The hotels the example starts with; the API and the inventory service both seed from it. */
export const HOTELS = [
  { hotelId: "lisbon-riverside", name: "Lisbon Riverside", rooms: 40 },
  { hotelId: "oslo-harbour", name: "Oslo Harbour", rooms: 30 },
  { hotelId: "kyoto-garden", name: "Kyoto Garden", rooms: 25 },
  { hotelId: "last-room-inn", name: "The Last Room Inn", rooms: 2 },
] as const;
