import { availableModels } from "@atrium/core/route";
import { config } from "./lib/clients";
import { json } from "./lib/http";
import { tenantApi } from "./lib/middleware";

/** OpenAI's model list, limited to what this tenant may call. */
export const handler = tenantApi(async (_event, context) => {
  const created = Math.floor(Date.parse(context.tenant.createdAt) / 1000);
  const data = availableModels(context.tenant, config).map((route) => ({
    id: route.model,
    object: "model",
    created,
    owned_by: route.kind === "dedicated" ? context.tenant.id : "atrium",
    route: route.kind,
  }));
  return json(200, { object: "list", data });
});
