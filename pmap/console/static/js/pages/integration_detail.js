// One integration: settings (never a secret), health, operations, jobs, schedules and its webhook panel.
import {api} from "../api.js";
import {errorNotice, h, replace} from "../dom.js";

export async function render(root, ctx) {
  let integration;
  try {
    integration = await api("GET", `/integrations/${ctx.params.integrationId}`);
  } catch (err) {
    replace(root, errorNotice(err));
    return;
  }
  ctx.setTitle(integration.name);
  const webhook = h("section", {id: "webhook-panel", "aria-labelledby": "webhook-heading"},
    h("h2", {id: "webhook-heading"}, "Webhook"));
  replace(root, webhook);
  const panel = await import("./webhook_panel.js");
  await panel.renderWebhookPanel(webhook, integration, ctx);
}
