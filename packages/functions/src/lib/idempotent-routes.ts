/**
 * The routes that honour the Idempotency-Key header (lib/idempotency.ts), and whom they scope a key to.
 * Free of side effects, so stacks/Api.ts can read it to grant exactly these functions the table.
 */
export const idempotentRoutes: ReadonlyMap<string, "tenant" | "admin"> = new Map([
  ["POST /v1/chat/completions", "tenant"],
  ["POST /v1/models/{model}/invocations", "tenant"],
  ["POST /admin/tenants", "admin"],
  ["POST /admin/tenants/{tenantId}/keys", "admin"],
  ["POST /admin/tenants/{tenantId}/keys/{keyId}/rotate", "admin"],
]);
