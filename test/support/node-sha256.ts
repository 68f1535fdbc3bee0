/**
 * The hash interface `@smithy/signature-v4` takes, over Node's crypto (a keyed one is an HMAC): for
 * tests that sign with the AWS SDK's own signer to check Atrium's.
 */
import { createHash, createHmac } from "node:crypto";

type Data = string | ArrayBuffer | ArrayBufferView;

export class NodeSha256 {
  readonly #hash;
  constructor(secret?: Data) {
    this.#hash = secret ? createHmac("sha256", bytes(secret)) : createHash("sha256");
  }
  update(data: Data): void {
    this.#hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
  reset(): void {}
}

const bytes = (data: Data): string | Uint8Array =>
  typeof data === "string"
    ? data
    : ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(data);
