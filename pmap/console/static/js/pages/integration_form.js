// Create (/integrations/new[?vendor=key]) and edit (/integrations/{id}/edit) an integration, with test before trust.
//
// The form is generated from the vendor type's JSON Schemas (GET /api/v1/connector-types). "Test connection"
// runs the API's test on what is typed before anything is saved: POST /integrations/test for a new one, POST
// /integrations/{id}/test with the edits laid over the saved integration when editing (the server reuses the
// stored secrets only while the target and its TLS trust are unchanged). Secret inputs are never pre-filled;
// when an edit moves the target or weakens TLS checking the secrets are asked for again, with the reason.
import {api, ApiError} from "../api.js";
import {button, errorNotice, field, h, notice, replace, timeAgo} from "../dom.js";
import {schemaForm, titleOf} from "../schema_form.js";

const THRESHOLD_DOC = "Imports drop findings ranked below this severity (counted as filtered_out). Findings whose "
  + "severity maps to nothing (unknown) are always kept and counted as unknown_severity.";
const SCHEDULE_DOC = "Scheduled syncs: a five-field cron expression (minute hour day-of-month month day-of-week, in "
  + "UTC), e.g. 0 3 * * 1 (Mondays 03:00) or */30 * * * *; leave blank for none. A disabled integration runs nothing.";
const ROTATION_DOC = "Scheduled rotations of the webhook secret (admin): a five-field cron expression in UTC; leave "
  + "blank for none. Each rotation keeps the old secret valid for a grace period.";
const UNSIGNED_DOC = "Accept webhook deliveries without a signature while no webhook secret is configured (not "
  + "recommended). In production only an admin may turn it on; every change is audited.";

/** The integration's own settings (pmap/integrations/schemas.py IntegrationCreate / IntegrationUpdate). */
function ownSchema(admin) {
  const properties = {
    name: {title: "Name", type: "string", description: "Unique in your organization."},
    enabled: {title: "Enabled", type: "boolean", default: true,
      description: "A disabled integration runs nothing: no test of its saved settings, no sync, no webhook."},
    severity_threshold: {title: "Severity threshold", enum: ["unknown", "info", "low", "medium", "high", "critical"],
      default: "info", description: THRESHOLD_DOC},
    sync_schedule: {title: "Sync schedule", anyOf: [{type: "string"}, {type: "null"}], default: null,
      description: SCHEDULE_DOC},
    allow_unsigned_webhooks: {title: "Allow unsigned webhooks", type: "boolean", default: false,
      description: UNSIGNED_DOC},
  };
  if (admin) {
    properties.webhook_rotation_schedule = {title: "Webhook secret rotation schedule",
      anyOf: [{type: "string"}, {type: "null"}], default: null, description: ROTATION_DOC};
  }
  return {properties, required: ["name", "severity_threshold"]};
}

// --- where stored secrets may go (mirrors pmap.integrations.service.target_changed) -------------------

function targetOf(url) {
  if (!url) return null;
  try {
    const u = new URL(url);
    const port = u.port || (u.protocol === "https:" ? "443" : u.protocol === "http:" ? "80" : "");
    return [u.protocol, u.hostname.toLowerCase().replace(/\.$/, ""), port, u.pathname.replace(/\/+$/, "")].join("|");
  } catch (e) {
    return `unparsed:${url}`;
  }
}

/** Why stored secrets may not go where `next` sends them, or null (the reasons the server asks again). */
function targetChange(old, next) {
  const reasons = [];
  if (targetOf(old.base_url) !== targetOf(next.base_url)) reasons.push("the Base URL points at another target");
  if (old.verify_tls !== false && next.verify_tls === false) reasons.push("TLS certificate verification is turned off");
  if ((old.ca_bundle || null) !== (next.ca_bundle || null)) reasons.push("the CA bundle changed");
  return reasons.length ? reasons : null;
}

// --- drawing a test result ------------------------------------------------------------------------

function licenseRows(license) {
  const rows = [];
  for (const [key, value] of Object.entries(license || {})) {
    if (value === null || value === undefined || typeof value === "object") continue;
    rows.push(h("dt", {}, titleOf(key, {})), h("dd", {}, String(value)));
  }
  return rows;
}

function testOutcome(result) {
  const props = [];
  if (result.latency_ms !== null && result.latency_ms !== undefined) {
    props.push(h("dt", {}, "Latency"), h("dd", {}, `${Math.round(result.latency_ms)} ms`));
  }
  if (result.product) props.push(h("dt", {}, "Product"), h("dd", {}, result.product));
  if (result.version) props.push(h("dt", {}, "Version"), h("dd", {}, result.version));
  if (result.failed_step) props.push(h("dt", {}, "Failed step"), h("dd", {}, h("code", {}, result.failed_step)));
  const license = result.license && Object.keys(result.license).length
    ? [h("h3", {}, "Licence"), h("dl", {class: "props"}, licenseRows(result.license))] : null;
  const warnings = (result.warnings || []).length
    ? notice("warning", h("strong", {}, "Warnings"), h("ul", {}, result.warnings.map((w) => h("li", {}, w))))
    : null;
  const head = result.ok
    ? h("strong", {}, "Connection test passed", result.message ? `: ${result.message}` : "")
    : h("strong", {}, "Connection test failed", result.failed_step ? ` at step ${result.failed_step}` : "");
  return h("div", {class: "test-outcome", "data-ok": result.ok ? "true" : "false"},
    notice(result.ok ? "ok" : "error", head,
      !result.ok && result.message ? h("div", {class: "hint"}, result.message) : null,
      props.length ? h("dl", {class: "props"}, props) : null,
      license),
    warnings);
}

/** The saved integration's last test: `last_test` when the API gives it, else `last_tested_at`. */
function lastTested(integration) {
  const test = integration.last_test;
  if (test && test.at) {
    return h("p", {class: "small"}, `Last test of the saved settings ${test.ok ? "passed" : "failed"} `,
      timeAgo(test.at), !test.ok && test.step ? [" at step ", h("code", {}, test.step)] : null, ".");
  }
  return integration.last_tested_at
    ? h("p", {class: "small"}, "Last successful test of the saved settings: ", timeAgo(integration.last_tested_at))
    : h("p", {class: "small muted"}, "The saved settings have not passed a test since they last changed.");
}

// --- the page -------------------------------------------------------------------------------------

export async function render(root, ctx) {
  if (!ctx.can.operate) {
    replace(root, notice("error", "This page needs the operator role."));
    return;
  }
  const editing = Boolean(ctx.params.integrationId);
  let types;
  let integration = null;
  try {
    [types, integration] = await Promise.all([
      api("GET", "/connector-types"),
      editing ? api("GET", `/integrations/${ctx.params.integrationId}`) : Promise.resolve(null),
    ]);
  } catch (err) {
    replace(root, errorNotice(err));
    return;
  }
  const byVendor = Object.fromEntries(types.map((t) => [t.vendor, t]));
  if (editing) ctx.setTitle(`Edit ${integration.name}`);

  // vendor choice
  const vendorSelect = h("select", {name: "vendor"});
  if (editing) {
    const t = byVendor[integration.vendor];
    vendorSelect.append(h("option", {value: integration.vendor}, t ? t.display_name : integration.vendor));
    vendorSelect.disabled = true;
  } else {
    vendorSelect.append(h("option", {value: ""}, "Choose a vendor…"));
    const categories = [...new Set(types.map((t) => t.category))].sort();
    for (const category of categories) {
      const group = h("optgroup", {label: category.toUpperCase().replace(/_/g, " ")});
      types.filter((t) => t.category === category)
        .sort((a, b) => a.display_name.localeCompare(b.display_name))
        .forEach((t) => group.append(h("option", {value: t.vendor}, t.display_name)));
      vendorSelect.append(group);
    }
    const wanted = new URLSearchParams(window.location.search).get("vendor");
    if (wanted && byVendor[wanted]) vendorSelect.value = wanted;
  }
  const vendorInfo = h("div", {class: "vendor-info"});

  // the integration's own settings (drawn once: kept when the vendor changes)
  const ownValues = editing ? {
    name: integration.name, enabled: integration.enabled, severity_threshold: integration.severity_threshold,
    sync_schedule: integration.sync_schedule, allow_unsigned_webhooks: integration.allow_unsigned_webhooks,
    webhook_rotation_schedule: integration.webhook_rotation_schedule,
  } : {};
  const own = schemaForm(ownSchema(ctx.can.admin), {idPrefix: "own", values: ownValues, editing});

  const connectionBox = h("section", {"aria-labelledby": "conn-heading"});
  const credentialsBox = h("section", {"aria-labelledby": "cred-heading"});
  const targetNotice = h("div", {class: "target-notice", "aria-live": "polite"});
  const testBox = h("div", {class: "test-box", "aria-live": "polite"});
  const saveBox = h("div", {class: "save-box", "aria-live": "polite"});
  let conn = null;
  let cred = null;
  let current = null; // the chosen vendor type

  const testButton = button("Test connection", () => runTest());
  const saveButton = h("button", {type: "submit", class: "primary"}, "Save");

  function drawVendor() {
    current = byVendor[vendorSelect.value] || null;
    testBox.replaceChildren();
    targetNotice.replaceChildren();
    if (!current) {
      conn = cred = null;
      replace(vendorInfo, h("p", {class: "muted"}, "Choose the vendor type to see its settings."));
      connectionBox.replaceChildren();
      credentialsBox.replaceChildren();
      testButton.disabled = true;
      saveButton.disabled = true;
      return;
    }
    testButton.disabled = current.file_only;
    saveButton.disabled = false;
    replace(vendorInfo,
      current.notes ? h("p", {class: "muted"}, current.notes) : null,
      current.file_only ? notice("info", `${current.display_name} is a file-only tool: there is no connection `
        + "to test; import its reports on the integration's page.") : null,
      current.docs_url ? h("p", {class: "small"}, h("a", {href: current.docs_url, rel: "noopener noreferrer",
        target: "_blank"}, `${current.display_name} documentation`)) : null);
    const connValues = editing ? {...integration.connection} : {};
    if (!editing && current.default_base_url) connValues.base_url = current.default_base_url;
    conn = schemaForm(current.connection_schema, {idPrefix: "conn", values: connValues, editing});
    cred = schemaForm(current.credentials_schema, {idPrefix: "cred", editing,
      stored: editing ? integration.credentials_set : []});
    replace(connectionBox, h("h2", {id: "conn-heading"}, "Connection"),
      Object.keys(conn.controls).length ? conn.element : h("p", {class: "muted"}, "No connection settings."));
    replace(credentialsBox, h("h2", {id: "cred-heading"}, "Credentials"),
      current.credentials_schema.description ? h("p", {class: "muted small"}, current.credentials_schema.description)
        : null,
      Object.keys(cred.controls).length ? cred.element : h("p", {class: "muted"}, "No credentials."));
    if (editing) {
      for (const c of Object.values(conn.controls)) {
        c.control.addEventListener("input", checkTarget);
        c.control.addEventListener("change", checkTarget);
      }
    }
  }

  // edit: the secrets stored for the saved target are asked for again when the target or its TLS trust changes
  let moved = null;
  function checkTarget() {
    if (!editing || !conn) return;
    const {values} = conn.read();
    moved = targetChange(integration.connection, values);
    const storedSecrets = Object.values(cred.controls).filter((c) => c.secret
      && integration.credentials_set.includes(c.name));
    storedSecrets.forEach((c) => cred.setRequired(c.name, Boolean(moved)));
    if (moved && storedSecrets.length) {
      replace(targetNotice, notice("warning", h("strong", {}, "Enter the secrets again: "),
        `${moved.join("; ")}. Stored secrets are only ever sent where they were set up, so `,
        storedSecrets.map((c) => c.label).join(" and "), " must be typed again before testing or saving."));
    } else {
      targetNotice.replaceChildren();
    }
  }

  function clearAllErrors() {
    [own, conn, cred].forEach((f) => f && f.clearErrors());
  }

  /** Show the API's field problems next to their fields; the rest in the notice. */
  function showFieldProblems(err) {
    const fields = (err && err.body && err.body.error && err.body.error.fields) || [];
    let placed = 0;
    for (const f of fields) {
      const path = String(f.field || "");
      const [head, name] = path.split(".");
      let ok = false;
      if (head === "connection" && conn) ok = conn.setError(name, f.reason);
      else if (head === "credentials" && cred) ok = cred.setError(name, f.reason);
      else ok = own.setError(head, f.reason);
      if (ok) placed += 1;
    }
    [own, conn, cred].forEach((form) => form && form.focusFirstError());
    return placed;
  }

  /** Read the form; client-side problems are shown next to their fields (null then). */
  function collect() {
    clearAllErrors();
    const a = own.read();
    const b = conn.read();
    const c = cred.read();
    let bad = false;
    for (const [form, r] of [[own, a], [conn, b], [cred, c]]) {
      for (const [name, reason] of Object.entries(r.errors)) {
        form.setError(name, reason);
        bad = true;
      }
    }
    if (bad) {
      [own, conn, cred].forEach((form) => form.focusFirstError());
      return null;
    }
    return {own: a.values, connection: b.values, credentials: c.values};
  }

  /** Connection keys to send on edit: the changed ones, null for a cleared one. */
  function connectionChanges(values) {
    const changes = {};
    const before = integration.connection || {};
    for (const name of Object.keys(conn.controls)) {
      const was = before[name];
      const now = values[name];
      if (now === undefined) {
        // an empty list or text is what an empty input means: not a change
        const empty = was === undefined || was === null || was === "" || (Array.isArray(was) && !was.length);
        if (!empty) changes[name] = null;
      } else if (JSON.stringify(now) !== JSON.stringify(was)) {
        changes[name] = now;
      }
    }
    return changes;
  }

  async function runTest() {
    if (!current) return;
    testBox.replaceChildren(notice("info", "Testing the connection…"));
    const data = collect();
    if (!data) {
      replace(testBox, notice("error", "Fix the marked fields first."));
      return;
    }
    testButton.disabled = true;
    testButton.setAttribute("aria-busy", "true");
    try {
      let result;
      if (editing && integration.enabled) {
        const changes = connectionChanges(data.connection);
        const overlay = {};
        if (Object.keys(changes).length) overlay.connection = changes;
        if (Object.keys(data.credentials).length) overlay.credentials = data.credentials;
        result = await api("POST", `/integrations/${integration.id}/test`, {json: overlay});
      } else {
        if (editing && !Object.keys(data.credentials).length && integration.credentials_set.length) {
          replace(testBox, notice("warning", "This integration is disabled, so its saved secrets are not used for "
            + "a test: type the credentials to test these settings unsaved, or enable it and save first."));
          return;
        }
        result = await api("POST", "/integrations/test", {json: {vendor: current.vendor,
          connection: data.connection, credentials: data.credentials}});
      }
      replace(testBox, testOutcome(result));
    } catch (err) {
      const placed = err instanceof ApiError ? showFieldProblems(err) : 0;
      replace(testBox, h("div", {class: "test-outcome", "data-ok": "false"},
        h("h3", {}, "Connection test not run"), errorNotice(err),
        placed ? h("p", {class: "small"}, "The marked fields need attention.") : null));
    } finally {
      testButton.disabled = false;
      testButton.removeAttribute("aria-busy");
    }
  }

  async function save(event) {
    event.preventDefault();
    if (!current) {
      replace(saveBox, notice("error", "Choose a vendor first."));
      return;
    }
    const data = collect();
    if (!data) {
      replace(saveBox, notice("error", "Fix the marked fields, then save again."));
      return;
    }
    saveButton.disabled = true;
    replace(saveBox, notice("info", "Saving…"));
    try {
      let saved;
      if (editing) {
        const body = {};
        if (data.own.name !== integration.name) body.name = data.own.name;
        for (const key of ["enabled", "allow_unsigned_webhooks", "severity_threshold"]) {
          if (data.own[key] !== undefined && data.own[key] !== integration[key]) body[key] = data.own[key];
        }
        for (const key of ["sync_schedule", "webhook_rotation_schedule"]) {
          if (!(key in own.controls)) continue;
          const now = data.own[key] === undefined ? null : data.own[key];
          if (now !== (integration[key] || null)) body[key] = now;
        }
        const changes = connectionChanges(data.connection);
        if (Object.keys(changes).length) body.connection = changes;
        if (Object.keys(data.credentials).length) body.credentials = data.credentials;
        saved = await api("PATCH", `/integrations/${integration.id}`, {json: body});
      } else {
        const body = {name: data.own.name, vendor: current.vendor, connection: data.connection,
          credentials: data.credentials, enabled: data.own.enabled,
          allow_unsigned_webhooks: data.own.allow_unsigned_webhooks,
          severity_threshold: data.own.severity_threshold};
        if (data.own.sync_schedule) body.sync_schedule = data.own.sync_schedule;
        if (data.own.webhook_rotation_schedule) body.webhook_rotation_schedule = data.own.webhook_rotation_schedule;
        saved = await api("POST", "/integrations", {json: body});
      }
      replace(saveBox, notice("ok", "Saved."));
      window.location.assign(`/integrations/${encodeURIComponent(saved.id)}`);
    } catch (err) {
      const placed = err instanceof ApiError ? showFieldProblems(err) : 0;
      replace(saveBox, errorNotice(err), placed ? h("p", {class: "small"}, "The marked fields need attention.") : null);
      saveButton.disabled = false;
    }
  }

  if (!editing) vendorSelect.addEventListener("change", () => {
    drawVendor();
    const u = new URL(window.location.href);
    if (vendorSelect.value) u.searchParams.set("vendor", vendorSelect.value);
    else u.searchParams.delete("vendor");
    window.history.replaceState(null, "", u.pathname + u.search);
  });

  const form = h("form", {class: "integration-form", novalidate: true, onsubmit: save},
    // no aria-labelledby here: the select alone is named "Vendor"
    h("section", {class: "card"},
      h("h2", {id: "vendor-heading"}, "Vendor type"),
      field("vendor", "Vendor", vendorSelect, {required: !editing,
        description: editing ? "The vendor type of a saved integration does not change." : null}),
      vendorInfo),
    h("section", {class: "card", "aria-labelledby": "own-heading"},
      h("h2", {id: "own-heading"}, "Integration"), own.element),
    h("div", {class: "card"}, connectionBox, credentialsBox, targetNotice),
    h("section", {class: "card", "aria-labelledby": "test-heading"},
      h("h2", {id: "test-heading"}, "Test before trust"),
      h("p", {class: "muted small"}, editing
        ? "Tests what is typed over the saved integration; nothing is saved. Stored secrets are reused only "
          + "while the target and its TLS checking stay the same."
        : "Tests what is typed; nothing is saved and the answer holds no secret."),
      editing ? lastTested(integration) : null,
      h("div", {class: "row"}, testButton),
      testBox),
    h("div", {class: "row form-actions"}, saveButton,
      h("a", {href: editing ? `/integrations/${encodeURIComponent(integration.id)}` : "/integrations"}, "Cancel")),
    saveBox);
  replace(root, form);
  drawVendor();
}
