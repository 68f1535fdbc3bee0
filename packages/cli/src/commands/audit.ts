import type { AuditChange, AuditEntry } from "@atrium/core/audit";
import { type Command, jsonOption, pageQuery } from "../command";
import { callAdmin, resolveConnection } from "../connection";
import { cell, table, time } from "../format";

function summary(changes: Record<string, AuditChange> | undefined): string {
  if (!changes) return "-";
  return Object.entries(changes)
    .map(([field, { from, to }]) =>
      from === undefined ? `${field}=${cell(to)}` : `${field}: ${cell(from)} -> ${cell(to)}`,
    )
    .join("; ");
}

export const auditCommands: Record<string, Command> = {
  audit: {
    summary: "a tenant's audit trail: who did what, to what, when, and what changed",
    usage: "atrium audit TENANT_ID [--limit N] [--cursor CURSOR] [--json]",
    positionals: ["TENANT_ID"],
    options: {
      limit: { type: "string", description: "entries per page, 1-1000 (default 100)" },
      cursor: { type: "string", description: "the page after the one that printed this cursor" },
      json: jsonOption,
    },
    async run(values, positionals, env) {
      const [tenantId] = positionals as [string];
      const connection = await resolveConnection(env);
      const result = await callAdmin<{ entries: AuditEntry[]; nextCursor?: string }>(
        connection,
        "GET",
        `/admin/tenants/${encodeURIComponent(tenantId)}/audit${pageQuery(values)}`,
      );
      const rows = result.entries.map((e) => [time(e.at), e.actor, e.action, e.target, summary(e.changes)]);
      const more = result.nextCursor
        ? `\n\nMore: atrium audit ${tenantId} --cursor ${result.nextCursor}`
        : "";
      return {
        json: result,
        human: `${table(["TIME", "ACTOR", "ACTION", "TARGET", "CHANGES"], rows, "No entries.")}${more}`,
      };
    },
  },
};
