import { randomBytes } from "node:crypto";

/** The one delimiter of every DynamoDB key; ids may never contain it. */
export const DELIMITER = "#";

/** Lower-case letters, digits and inner hyphens; 3-40 characters; never the delimiter. */
export const TENANT_ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$/;

export const isTenantId = (id: string): boolean => TENANT_ID_PATTERN.test(id);

/** What newKeyId makes; checked wherever a key id arrives from outside. */
export const KEY_ID_PATTERN = /^key-[0-9a-z]{12}$/;

export const isKeyId = (id: string): boolean => KEY_ID_PATTERN.test(id);

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz";

/** Uniform random string over an alphabet (rejection sampling, so no modulo bias). */
export function randomString(length: number, alphabet: string = BASE62): string {
  const limit = 256 - (256 % alphabet.length);
  let out = "";
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < limit) out += alphabet[byte % alphabet.length];
      if (out.length === length) break;
    }
  }
  return out;
}

export const newTenantId = () => `tn-${randomString(12, BASE36)}`;
export const newKeyId = () => `key-${randomString(12, BASE36)}`;
