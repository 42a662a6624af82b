// The webhook panel of an integration's detail page (not a page of its own).
//
// Draws only from the webhook API (/api/v1/integrations/{id}/webhook...). Controls are drawn for the roles the
// API allows (the server refuses the others anyway): generate, register and auto-setup need an operator (and,
// after a change of target, an admin: `target_approved`), regenerate and reveal an admin. The revealed secret is
// the one secret the console ever puts in a page: held only in a masked input until the admin asks to see it,
// never stored, logged or put in a URL, and removed from the DOM on Hide, after REVEAL_SECONDS, and when the
// page is hidden or left.
import {ApiError, api, poll} from "../api.js";
import {button, errorNotice, field, h, notice, replace, table, timeAgo, when} from "../dom.js";

/** How long a revealed secret stays on the page. */
const REVEAL_SECONDS = 60;
/** Deliveries per page. */
const PAGE_SIZE = 20;
const OUTCOMES = ["accepted", "processed", "duplicate", "failed", "rejected"];

/** Draw the panel into `section` (which already holds its <h2>) for `integration`. */
export async function renderWebhookPanel(section, integration, ctx) {
  const base = `/integrations/${encodeURIComponent(integration.id)}/webhook`;
  const statusBox = h("div", {class: "webhook-status"}, h("p", {class: "muted loading"}, "Loading webhook status…"));
  const resultBox = h("div", {class: "webhook-result"});
  const actionsBox = h("div", {class: "webhook-actions"});
  const revealBox = h("div", {class: "webhook-reveal"});
  const deliveriesBox = h("div", {class: "webhook-deliveries"});
  section.append(statusBox, actionsBox, resultBox, revealBox, deliveriesBox);

  let status = null;
  let busy = false;
  const revealed = secretHolder(revealBox);

  async function loadStatus() {
    status = await api("GET", base);
    drawStatus();
    drawActions();
  }

  function drawStatus() {
    const s = status;
    const rows = [
      ["Scheme", h("code", {}, s.scheme)],
      ["Configured", s.configured ? badge("good", "configured") : badge("warn", "not configured")],
      ["Receiving URL", h("span", {class: "row"}, h("code", {class: "webhook-url"}, s.receiving_url),
        button("Copy URL", (e) => copy(s.receiving_url, e.currentTarget), {"aria-label": "Copy receiving URL"}))],
      ["Registered", s.registered
        ? h("span", {}, badge("good", "registered"), " ", timeAgo(s.registered_at),
          s.hook_id ? h("span", {}, " · hook id ", h("code", {class: "hook-id"}, s.hook_id)) : null)
        : s.registration_supported ? badge("warn", "not registered")
          : h("span", {class: "muted"}, "not supported by this vendor: set the URL and secret on the vendor by hand")],
      ["Secret created", timeAgo(s.secret_created_at)],
      ["Secret rotated", timeAgo(s.secret_rotated_at)],
      ["Previous secret valid until", s.previous_secret_valid_until
        ? h("span", {}, h("time", {datetime: s.previous_secret_valid_until}, when(s.previous_secret_valid_until)),
          " (", timeAgo(s.previous_secret_valid_until), ")")
        : h("span", {class: "muted"}, "no grace period running")],
      ["Last delivery", s.last_delivery_at
        ? h("span", {}, timeAgo(s.last_delivery_at), " ", outcomeBadge(s.last_delivery_outcome))
        : h("span", {class: "muted"}, "none yet")],
      ["Last verified delivery", timeAgo(s.last_verified_delivery_at)],
      ["Last rejection", s.last_rejection_at
        ? h("span", {}, timeAgo(s.last_rejection_at), " · ", h("span", {class: "reason"}, s.last_rejection_reason || "no reason recorded"))
        : h("span", {class: "muted"}, "none")],
      ["Rejected attempts", String(s.rejected_count)],
      ["Unsigned deliveries allowed", s.allow_unsigned ? badge("bad", "yes") : badge("good", "no")],
      ["Target approved", s.target_approved ? badge("good", "yes")
        : h("span", {}, badge("bad", "no"), " the target changed since an admin approved it: only an admin may register")],
    ];
    const dl = h("dl", {class: "props", "aria-label": "Webhook status"},
      rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
    replace(statusBox, dl,
      s.warnings.length ? notice("warning", h("strong", {}, "Webhook warnings"),
        h("ul", {}, s.warnings.map((w) => h("li", {}, w)))) : null);
  }

  function drawActions() {
    const s = status;
    const controls = [];
    const may = {
      generate: ctx.can.operate && !s.configured,
      regenerate: ctx.can.admin && s.configured,
      // an operator only sends the secret to an approved target; an admin's call approves it
      register: ctx.can.operate && s.registration_supported && s.configured && (s.target_approved || ctx.can.admin),
      autoSetup: ctx.can.operate && s.registration_supported && (s.target_approved || ctx.can.admin),
      reveal: ctx.can.admin && s.configured,
    };
    if (may.generate) {
      controls.push(action("Generate", "Create a webhook secret in the vendor's format. It is stored encrypted and "
        + "not shown; an admin can reveal it to paste into the vendor, or use Auto-setup.", generate, "primary"));
    }
    if (may.autoSetup) {
      controls.push(action("Auto-setup", "Generate a secret if there is none, install PMAP's receiver on the vendor, "
        + "trigger the vendor's test delivery and check it arrived verified.", autoSetup, s.configured ? "" : "primary"));
    }
    if (may.register) {
      controls.push(action("Register", s.registered
        ? "Install the receiver on the vendor again with the current secret (replaces the hook PMAP registered)."
        : "Install PMAP's receiver on the vendor with the current secret.", register));
    }
    if (may.regenerate) {
      const grace = h("input", {type: "number", min: "0", max: String(30 * 24), step: "any", inputmode: "decimal",
        placeholder: "server default"});
      controls.push(h("div", {class: "webhook-action"},
        field("webhook-grace-hours", "Grace period (hours)", grace, {description:
          "How long the previous secret is still accepted after Regenerate, while you update the vendor "
          + "(blank: the server's default; 0 ends it at once)."}),
        button("Regenerate", () => regenerate(grace.value), {class: "danger", "aria-describedby": "webhook-grace-hours-help"})));
    }
    if (may.reveal) {
      controls.push(action("Reveal", "Show the current secret once, to paste it into the vendor's webhook "
        + "configuration. Admin only; audited.", confirmReveal));
    }
    const notes = [];
    if (ctx.can.admin && s.registration_supported && !s.target_approved) {
      notes.push("The integration's target changed since an admin last approved it: your Register or Auto-setup "
        + "sends the webhook secret to the new target and approves it for operators.");
    }
    if (!ctx.can.operate) {
      notes.push("Your role can read the webhook status and deliveries; changing the webhook needs an operator.");
    } else if (!ctx.can.admin) {
      if (s.configured) notes.push("Only an admin may reveal or rotate the webhook secret.");
      if (s.registration_supported && !s.target_approved) {
        notes.push("The integration's target changed since an admin approved it for the webhook secret: an admin must "
          + "register the webhook on the new target before an operator may register or auto-setup.");
      }
    }
    replace(actionsBox,
      controls.length ? h("h3", {}, "Actions") : null,
      controls.length ? h("div", {class: "webhook-controls"}, controls) : null,
      notes.map((n) => h("p", {class: "muted small"}, n)));
  }

  function action(label, help, run, cls = "") {
    const id = `webhook-${label.toLowerCase().replace(/[^a-z]+/g, "-")}-help`;
    return h("div", {class: "webhook-action"},
      button(label, run, {class: cls || null, "aria-describedby": id}),
      h("div", {class: "help", id}, help));
  }

  /** Run one state-changing call with the controls disabled; its outcome goes to the result box. */
  async function run(label, call, describe) {
    if (busy) return;
    busy = true;
    for (const b of actionsBox.querySelectorAll("button")) b.disabled = true;
    replace(resultBox, notice("info", `${label}…`));
    try {
      const answer = await call();
      replace(resultBox, describe(answer));
    } catch (err) {
      replace(resultBox, h("div", {}, h("p", {class: "small"}, `${label} failed.`), errorNotice(err)));
    } finally {
      busy = false;
      try { await loadStatus(); } catch (err) { replace(statusBox, errorNotice(err)); }
      await loadDeliveries();
    }
  }

  function generate() {
    return run("Generate", () => api("POST", `${base}/generate`), () => notice("ok",
      "Webhook secret generated and stored encrypted. ",
      ctx.can.admin ? "Reveal it to paste into the vendor, or use Register / Auto-setup."
        : "Use Register or Auto-setup to install it on the vendor, or ask an admin to reveal it."));
  }

  function regenerate(hours) {
    const json = hours === "" ? {} : {grace_seconds: Math.round(Number(hours) * 3600)};
    revealed.destroy();  // a secret on the page would be the old one now
    return run("Regenerate", () => api("POST", `${base}/regenerate`, {json}), (s) => notice("ok",
      h("strong", {}, "A new webhook secret was generated. "),
      s.previous_secret_valid_until
        ? h("span", {class: "grace"}, "The previous secret stays valid until ",
          h("time", {datetime: s.previous_secret_valid_until}, when(s.previous_secret_valid_until)),
          " (", timeAgo(s.previous_secret_valid_until), "): update the vendor before then.")
        : h("span", {class: "grace"}, "The previous secret is no longer accepted."),
      s.registered ? " The vendor still has the old secret: register again." : ""));
  }

  function register() {
    return run("Register", () => api("POST", `${base}/register`), (r) => notice("ok",
      h("strong", {}, "Registered on the vendor. "), "Hook id ", h("code", {}, r.hook_id), " at ", h("code", {}, r.url),
      r.signed ? " (signed deliveries)." : " (the vendor does not sign deliveries).",
      r.ping_supported ? "" : " The vendor has no test delivery."));
  }

  function autoSetup() {
    return run("Auto-setup", () => api("POST", `${base}/auto-setup`), (r) => {
      const p = r.ping;
      const ping = !p.supported ? "the vendor has no test delivery"
        : p.verified ? "test delivery received and verified"
          : p.failed_step ? `test delivery failed at step ${p.failed_step}`
            : p.received ? "test delivery received but not verified"
              : p.sent ? "test delivery sent but not received" : "no test delivery sent";
      return notice(r.ok ? "ok" : "warning",
        h("strong", {}, r.ok ? "Auto-setup done. " : "Auto-setup finished with problems. "),
        h("dl", {class: "props"},
          h("dt", {}, "Secret"), h("dd", {}, r.generated ? "generated" : "existing secret kept"),
          h("dt", {}, "Registered"), h("dd", {}, "hook id ", h("code", {}, r.registration.hook_id), " at ",
            h("code", {}, r.registration.url)),
          h("dt", {}, "Ping"), h("dd", {}, ping, p.message ? h("span", {}, ": ", p.message) : null)),
        r.warnings.length ? h("ul", {}, r.warnings.map((w) => h("li", {}, w))) : null);
    });
  }

  // --- reveal: confirm, then one masked field -------------------------------------------------------

  function confirmReveal() {
    const dialog = h("dialog", {class: "webhook-confirm", "aria-labelledby": "reveal-title",
      "aria-describedby": "reveal-why"},
    h("h3", {id: "reveal-title"}, "Reveal the webhook secret?"),
    h("div", {id: "reveal-why"},
      h("p", {}, "Reveal it only to paste it into the vendor's webhook configuration (for a vendor PMAP cannot "
        + "register on by itself). The reveal is recorded in the audit log under your name."),
      h("p", {}, `It is shown masked on this page only, and removed after ${REVEAL_SECONDS} seconds, when you press `
        + "Hide, or when you leave or hide this page. It is never stored by the console.")),
    h("div", {class: "row"},
      button("Cancel", () => dialog.close()),
      button("Confirm reveal", () => { dialog.close(); reveal(); }, {class: "danger"})));
    dialog.addEventListener("close", () => dialog.remove());
    section.append(dialog);
    dialog.showModal();
  }

  async function reveal() {
    revealed.destroy();
    replace(resultBox);
    let secret;
    try {
      secret = (await api("POST", `${base}/reveal`)).secret;
    } catch (err) {
      replace(resultBox, h("div", {}, h("p", {class: "small"}, "Reveal failed."), errorNotice(err)));
      return;
    }
    revealed.show(secret);
  }

  // --- deliveries -----------------------------------------------------------------------------------

  const pages = {cursors: [null], index: 0, outcome: "", stopPoll: null};

  async function loadDeliveries() {
    let page;
    try {
      page = await api("GET", `${base}/deliveries`, {query: {limit: PAGE_SIZE, cursor: pages.cursors[pages.index],
        outcome: pages.outcome}});
    } catch (err) {
      replace(deliveriesBox, h("h3", {}, "Deliveries"), errorNotice(err));
      return false;
    }
    pages.cursors[pages.index + 1] = page.next_cursor;
    drawDeliveries(page);
    const waiting = page.items.some((d) => d.outcome === "accepted");
    if (waiting && !pages.stopPoll) {
      // processing follows acceptance shortly: look again (never faster than 2 s) until nothing waits
      pages.stopPoll = poll(async () => {
        const more = await loadDeliveries();
        if (!more) pages.stopPoll = null;
        return !more;
      }, 3000);
    }
    return waiting;
  }

  function drawDeliveries(page) {
    const filter = h("select", {onchange: (e) => { pages.outcome = e.target.value; pages.cursors = [null];
      pages.index = 0; loadDeliveries(); }},
    h("option", {value: ""}, "all"),
    OUTCOMES.map((o) => h("option", {value: o, selected: o === pages.outcome}, o)));
    const columns = [
      {label: "Received", cell: (d) => h("time", {datetime: d.received_at, title: when(d.received_at)}, when(d.received_at))},
      {label: "Event", cell: (d) => d.event ? h("code", {}, d.event) : h("span", {class: "muted"}, "—")},
      {label: "Delivery id", cell: (d) => d.delivery_id ? h("code", {}, d.delivery_id) : h("span", {class: "muted"}, "—")},
      {label: "Verification", cell: verificationCell},
      {label: "Processing", cell: (d) => h("span", {}, outcomeBadge(d.outcome),
        d.processed_at ? h("span", {class: "muted small"}, " ", timeAgo(d.processed_at)) : null,
        d.reason && d.outcome !== "rejected" ? h("div", {class: "small reason"}, d.reason) : null)},
      {label: "Attempts", cell: (d) => String(d.attempts)},
    ];
    replace(deliveriesBox,
      h("h3", {id: "deliveries-heading"}, "Deliveries"),
      h("div", {class: "filters row"},
        field("webhook-delivery-outcome", "Outcome", filter),
        button("Refresh deliveries", () => { refresh(); })),
      table(columns, page.items, {caption: "Deliveries, newest first", empty: pages.outcome
        ? `No ${pages.outcome} deliveries.` : "No deliveries received yet."}),
      h("nav", {class: "pager", "aria-label": "Deliveries pages"},
        button("Newer", () => { pages.index -= 1; loadDeliveries(); }, {disabled: pages.index === 0}),
        h("span", {class: "muted small"}, `Page ${pages.index + 1}`),
        button("Older", () => { pages.index += 1; loadDeliveries(); }, {disabled: !page.next_cursor})));
  }

  async function refresh() {
    try { await loadStatus(); } catch (err) { replace(statusBox, errorNotice(err)); }
    await loadDeliveries();
  }

  try {
    await loadStatus();
  } catch (err) {
    replace(actionsBox);
    if (err instanceof ApiError && err.body && err.body.error && err.body.error.code === "operation_not_supported") {
      replace(statusBox, h("p", {class: "muted"}, "This vendor type sends no webhooks PMAP can verify."));
    } else {
      replace(statusBox, errorNotice(err));
    }
    return;
  }
  await loadDeliveries();
}

/** Where the revealed secret lives while on screen: one masked input, gone on Hide, timeout, or leaving. */
function secretHolder(box) {
  let input = null;
  let timer = null;

  function destroy() {
    if (timer) clearTimeout(timer);
    timer = null;
    if (input) input.value = "";
    input = null;
    box.replaceChildren();
  }

  function show(secret) {
    destroy();
    input = h("input", {type: "password", readonly: true, autocomplete: "off", spellcheck: "false",
      autocapitalize: "off", "data-lpignore": "true"});
    input.value = secret;  // a property, never an attribute: not in the serialized markup
    const field_ = input;
    const toggle = button("Show", () => {
      const masked = field_.type === "password";
      field_.type = masked ? "text" : "password";
      toggle.textContent = masked ? "Mask" : "Show";
      toggle.setAttribute("aria-pressed", String(masked));
    }, {"aria-pressed": "false", "aria-controls": "webhook-secret"});
    const status = h("div", {class: "small muted", role: "status"});
    const copyButton = button("Copy", async () => {
      try {
        await navigator.clipboard.writeText(field_.value);
        status.textContent = "Copied to the clipboard.";
      } catch (err) {
        status.textContent = "The browser refused the clipboard: press Show, select the value and copy it.";
      }
    });
    const until = new Date(Date.now() + REVEAL_SECONDS * 1000);
    box.append(h("div", {class: "card secret-reveal"},
      field("webhook-secret", "Webhook secret", input, {description: "Paste it into the vendor's webhook "
        + `configuration. Shown once: it is removed at ${until.toLocaleTimeString()} (${REVEAL_SECONDS} s), `
        + "on Hide, or when you leave this page."}),
      h("div", {class: "row secret-field"}, toggle, copyButton, button("Hide", destroy)),
      status));
    timer = setTimeout(destroy, REVEAL_SECONDS * 1000);
    input.focus();
  }

  // leaving or hiding the page takes the secret off it (and out of a back/forward cache snapshot)
  window.addEventListener("pagehide", destroy);
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") destroy(); });
  return {show, destroy};
}

function badge(kind, text) {
  return h("span", {class: `badge ${kind}`}, text);
}

function outcomeBadge(outcome) {
  const kind = {processed: "good", accepted: "", duplicate: "", failed: "bad", rejected: "bad"}[outcome];
  return h("span", {class: `badge ${kind || ""}`.trim()}, outcome || "unknown");
}

function verificationCell(d) {
  if (d.outcome === "rejected" || d.verification === "failed") {
    return h("span", {}, badge("bad", "rejected"), " ", h("span", {class: "reason"}, d.reason || "no reason recorded"));
  }
  if (d.verification === "signed") {
    return h("span", {}, badge("good", "verified"), d.secret === "previous"
      ? h("span", {class: "small muted"}, " with the previous secret") : null);
  }
  return badge("warn", d.verification || "unknown");
}

async function copy(text, target) {
  try {
    await navigator.clipboard.writeText(text);
    target.textContent = "Copied";
  } catch (err) {
    target.textContent = "Copy failed";
  }
  setTimeout(() => { target.textContent = "Copy URL"; }, 2000);
}
