import { invalidRequest } from "./errors";

/** A DynamoDB position (LastEvaluatedKey) handed to callers as an opaque string. */
export type Position = Record<string, string>;

export const encodeCursor = (position: Position): string =>
  Buffer.from(JSON.stringify(position)).toString("base64url");

/**
 * Reads a cursor back, refusing anything this API did not hand out for `fits`: a cursor is input
 * too, and must not steer a read into another tenant's partition.
 */
export function decodeCursor(cursor: string, fits: (position: Position) => boolean): Position {
  const refused = () => invalidRequest("invalid_cursor", "cursor: not a cursor this API returned", "cursor");
  if (cursor.length > 2048 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw refused();
  let position: unknown;
  try {
    position = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw refused();
  }
  const isPosition =
    typeof position === "object" &&
    position !== null &&
    !Array.isArray(position) &&
    Object.values(position).every((value) => typeof value === "string");
  if (!isPosition || !fits(position as Position)) throw refused();
  return position as Position;
}

/** `limit` from a query string: 1 to `max`, `fallback` when absent. */
export function pageLimit(raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  const limit = Number(raw);
  if (!/^\d+$/.test(raw) || limit < 1 || limit > max) {
    throw invalidRequest("invalid_limit", `limit: a whole number from 1 to ${max}`, "limit");
  }
  return limit;
}
