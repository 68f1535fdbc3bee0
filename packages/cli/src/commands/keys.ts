import type { KeyView } from "@atrium/core/key-lifecycle";
import { type Command, effectLine, jsonOption, type Propagation, requireOptions } from "../command";
import { CliError, callAdmin, resolveConnection } from "../connection";
import { duration, parseDuration, table, time } from "../format";

const keysPath = (tenantId: string) => `/admin/tenants/${encodeURIComponent(tenantId)}/keys`;
const keyPath = (tenantId: string, keyId: string) => `${keysPath(tenantId)}/${encodeURIComponent(keyId)}`;

export const keyCommands: Record<string, Command> = {
  "keys create": {
    summary: "add an API key to a tenant (the key is shown once)",
    usage: "atrium keys create TENANT_ID [--json]",
    positionals: ["TENANT_ID"],
    options: { json: jsonOption },
    async run(_values, positionals, env) {
      const [tenantId] = positionals as [string];
      const connection = await resolveConnection(env);
      const result = await callAdmin<{ apiKey: string; key: KeyView }>(
        connection,
        "POST",
        keysPath(tenantId),
      );
      return {
        json: result,
        human: `API key ${result.key.keyId} for tenant ${tenantId} (shown once, store it now):\n  ${result.apiKey}`,
      };
    },
  },

  "keys list": {
    summary: "list a tenant's keys: hint, state, created, last used, expiry (never the key itself)",
    usage: "atrium keys list TENANT_ID [--json]",
    positionals: ["TENANT_ID"],
    options: { json: jsonOption },
    async run(_values, positionals, env) {
      const [tenantId] = positionals as [string];
      const connection = await resolveConnection(env);
      const result = await callAdmin<{ keys: KeyView[] }>(connection, "GET", keysPath(tenantId));
      const rows = result.keys.map((key) => [
        key.keyId,
        key.hint,
        key.state,
        time(key.createdAt),
        time(key.lastUsedAt),
        time(key.expiresAt ?? key.revokedAt),
      ]);
      const note = "\n\nLast used is refreshed at most every 5 minutes.";
      return {
        json: result,
        human: `${table(["KEY ID", "HINT", "STATE", "CREATED", "LAST USED", "ENDS"], rows, "No keys.")}${rows.length > 0 ? note : ""}`,
      };
    },
  },

  "keys rotate": {
    summary: "replace a key: a new key now, the old one working for the grace period, then refused",
    usage: "atrium keys rotate TENANT_ID KEY_ID --grace DURATION [--json]",
    positionals: ["TENANT_ID", "KEY_ID"],
    options: {
      grace: {
        type: "string",
        description: "how long the old key keeps working: 24h, 30m, 45s, 7d (at most 30d); 0 stops it now",
      },
      json: jsonOption,
    },
    async run(values, positionals, env) {
      const [tenantId, keyId] = positionals as [string, string];
      requireOptions(values, "grace");
      const graceSeconds = parseDuration(String(values.grace));
      if (graceSeconds === undefined) {
        throw new CliError(
          `--grace: a duration such as 24h, 30m, 45s or 0, not '${String(values.grace)}'`,
          2,
        );
      }
      const connection = await resolveConnection(env);
      const result = await callAdmin<{
        apiKey: string;
        key: KeyView;
        rotated: KeyView;
        propagation: Propagation;
      }>(connection, "POST", `${keyPath(tenantId, keyId)}/rotate`, { graceSeconds });
      const end =
        graceSeconds === 0
          ? `Key ${keyId} is refused from the next call.`
          : `Key ${keyId} keeps working for ${duration(graceSeconds)}, until ${time(result.rotated.expiresAt)}, then is refused.`;
      return {
        json: result,
        human: [
          `New API key ${result.key.keyId} (shown once, store it now):`,
          `  ${result.apiKey}`,
          end,
        ].join("\n"),
      };
    },
  },

  "keys revoke": {
    summary: "revoke a key: it is refused (401) from the next call",
    usage: "atrium keys revoke TENANT_ID KEY_ID [--json]",
    positionals: ["TENANT_ID", "KEY_ID"],
    options: { json: jsonOption },
    async run(_values, positionals, env) {
      const [tenantId, keyId] = positionals as [string, string];
      const connection = await resolveConnection(env);
      const result = await callAdmin<{ key: KeyView; propagation: Propagation }>(
        connection,
        "POST",
        `${keyPath(tenantId, keyId)}/revoke`,
      );
      return { json: result, human: `Key ${keyId} revoked. ${effectLine(result.propagation)}` };
    },
  },
};
