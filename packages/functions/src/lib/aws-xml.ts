/**
 * What the Query-protocol and S3 clients (lib/sts.ts, lib/sns.ts, lib/s3.ts) share: the SDK's form encoding of a
 * request, the text of an element in an XML answer, and an XML error answer read as an AwsCallError.
 */
import type { IncomingMessage } from "node:http";
import { AwsCallError } from "@atrium/core/aws-http";

/** RFC 3986 percent-encoding, as the SDK's extendedEncodeURIComponent: everything but A-Z a-z 0-9 - _ . ~ */
export const uriEncode = (text: string): string =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** A form body as the SDK writes one: pairs in order, each name and value uriEncoded; unset values left out. */
export const formEncode = (pairs: [string, string | undefined][]): string =>
  pairs
    .filter((pair): pair is [string, string] => pair[1] !== undefined)
    .map(([name, value]) => `${uriEncode(name)}=${uriEncode(value)}`)
    .join("&");

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** The text of the first `<name>` element of `xml`, its entities decoded (these answers have no attributes on it). */
export function element(xml: string, name: string): string | undefined {
  const start = xml.indexOf(`<${name}>`);
  if (start < 0) return undefined;
  const end = xml.indexOf(`</${name}>`, start);
  if (end < 0) return undefined;
  return xml
    .slice(start + name.length + 2, end)
    .replace(/&(amp|lt|gt|quot|apos|#x[0-9a-fA-F]+|#\d+);/g, (_all, entity: string) =>
      entity.startsWith("#x")
        ? String.fromCodePoint(Number.parseInt(entity.slice(2), 16))
        : entity.startsWith("#")
          ? String.fromCodePoint(Number.parseInt(entity.slice(1), 10))
          : (ENTITIES[entity] ?? ""),
    );
}

/**
 * An XML error answer (the Query protocol's `<ErrorResponse><Error>`, S3's `<Error>`): its Code and
 * Message, or the status when it has none; `names` maps a code to the name the SDK gives it.
 */
export function xmlError(
  response: IncomingMessage,
  body: Uint8Array,
  names: Record<string, string> = {},
): AwsCallError {
  const xml = xmlText(body);
  const code = element(xml, "Code") ?? `Http${response.statusCode}`;
  const message = element(xml, "Message") ?? `HTTP ${response.statusCode}`;
  return new AwsCallError(names[code] ?? code, message, { status: response.statusCode });
}

/** An answer's bytes as text. */
export const xmlText = (body: Uint8Array): string =>
  Buffer.from(body.buffer, body.byteOffset, body.length).toString("utf8");
