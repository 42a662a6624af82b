// The webhook panel of an integration's detail page (not a page of its own).
import {h} from "../dom.js";

/** Draw the panel into `section` (which already holds its <h2>) for `integration`. */
export async function renderWebhookPanel(section, integration, ctx) {
  section.append(h("p", {class: "muted"}, integration.webhook_secret_configured ? "Configured." : "Not configured."));
}
