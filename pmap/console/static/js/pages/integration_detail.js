// One integration: settings (never a secret), health, operations, jobs, schedules and its webhook panel.
// Drawn only from the JSON API; controls a role may not use are not drawn (the API refuses them anyway).
import {api, poll, upload} from "../api.js";
import {ago, button, errorNotice, field, h, notice, replace, table, timeAgo, when} from "../dom.js";
import {titleOf} from "../schema_form.js";
import {ENDED, followJob, jobError, progressView, shortSummary, summaryList} from "../detail/jobs.js";

const SYNC_OPS = ["sync_findings", "fetch_pipeline_reports"];
const SCAN_OPS = ["launch_scan"];

/** A section with its heading: h2 id is `${id}-heading`. */
function section(id, title, ...children) {
  return h("section", {id, class: "card detail-section", "aria-labelledby": `${id}-heading`},
    h("h2", {id: `${id}-heading`}, title), ...children);
}

function props(pairs) {
  return h("dl", {class: "props"}, pairs.filter(Boolean).map(([dt, dd, attrs]) => [h("dt", {}, dt),
    h("dd", attrs || {}, dd)]));
}

/** A time as "local time (age)", with `datetime` for machines; "never" when absent. */
function stamp(iso, never = "never") {
  if (!iso) return h("span", {class: "muted"}, never);
  return h("span", {}, h("time", {datetime: iso, title: iso}, when(iso)), " ",
    h("span", {class: "muted"}, `(${ago(iso)})`));
}

function text(value) {
  if (value === true) return "yes";
  if (value === false) return "no";
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** A schema property's title (the server spells it: "Base URL"), else its key. */
function schemaTitle(schema, key) {
  return titleOf(key, schema && schema.properties && schema.properties[key]);
}

function supports(type, ops) {
  return Boolean(type && type.operations && ops.some((op) => type.operations.includes(op)));
}

function fieldError(err, name) {
  const fields = (err && err.body && err.body.error && err.body.error.fields) || [];
  const mine = fields.filter((f) => f.field === name || String(f.field).endsWith(`.${name}`));
  return mine.map((f) => f.reason).join("; ");
}

export async function render(root, ctx) {
  const id = ctx.params.integrationId;
  let integration;
  try {
    integration = await api("GET", `/integrations/${id}`);
  } catch (err) {
    replace(root, errorNotice(err));
    return;
  }
  let type = null;
  try {
    type = await api("GET", `/connector-types/${encodeURIComponent(integration.vendor)}`);
  } catch (err) {
    type = null; // an unknown vendor type: operations are simply not offered
  }
  ctx.setTitle(integration.name);

  const areas = {
    header: h("div"), settings: h("div"), health: h("div"), sync: h("div"), schedules: h("div"),
  };
  const refreshers = [];
  let reloadJobs = () => {}; // set by the jobs section: redraws the job list (and follows its running jobs)

  async function refresh() {
    try {
      integration = await api("GET", `/integrations/${id}`);
    } catch (err) {
      return;
    }
    drawHeader();
    drawSettings();
    drawHealth();
    drawSyncMeta();
    drawSchedules();
    refreshers.forEach((fn) => fn());
  }

  // ---- header ---------------------------------------------------------------------------------------------
  const deleteBox = h("div", {class: "delete-box"});
  function drawHeader() {
    const actions = [];
    if (ctx.can.operate) {
      actions.push(h("a", {class: "btn", href: `/integrations/${encodeURIComponent(id)}/edit`}, "Edit"));
    }
    if (ctx.can.admin) {
      actions.push(button("Delete", () => confirmDelete(), {class: "danger"}));
    }
    replace(areas.header,
      h("div", {class: "row detail-header"},
        h("div", {},
          h("p", {},
            h("span", {}, (type && type.display_name) || integration.vendor), " · ",
            h("span", {}, `category: ${integration.category}`), " · ",
            h("span", {class: `badge ${integration.enabled ? "good" : "bad"}`},
              integration.enabled ? "enabled" : "disabled"))),
        actions.length ? h("div", {class: "row detail-actions"}, actions) : null),
      deleteBox);
  }

  async function confirmDelete() {
    let counts = null;
    try {
      const preview = await api("DELETE", `/integrations/${id}`, {query: {dry_run: "true"}});
      counts = preview && preview.would_delete;
    } catch (err) {
      counts = null;
    }
    const list = counts ? h("ul", {}, Object.entries(counts).filter(([, n]) => n > 0)
      .map(([k, n]) => h("li", {}, `${n} ${k.replace(/_/g, " ")}`))) : null;
    replace(deleteBox, notice("warning",
      h("p", {}, h("strong", {}, "Delete this integration?"),
        " Its stored secrets, findings, imports, ticket links, webhook deliveries and jobs are removed too."),
      list && list.childElementCount ? list : null,
      h("div", {class: "row"},
        button("Delete integration", async () => {
          try {
            await api("DELETE", `/integrations/${id}`);
            window.location.assign("/integrations");
          } catch (err) {
            deleteBox.append(errorNotice(err));
          }
        }, {class: "danger"}),
        button("Cancel", () => replace(deleteBox)))));
  }

  // ---- settings -------------------------------------------------------------------------------------------
  function drawSettings() {
    const schema = type && type.connection_schema;
    const credSchema = type && type.credentials_schema;
    const connection = Object.entries(integration.connection || {})
      .map(([k, v]) => [schemaTitle(schema, k), h("span", {class: "setting-value"}, text(v))]);
    const secrets = integration.credentials_set || [];
    replace(areas.settings,
      h("h3", {}, "Connection"),
      connection.length ? props(connection) : h("p", {class: "muted"}, "No connection settings."),
      h("h3", {}, "Stored secrets"),
      secrets.length
        ? h("ul", {class: "secret-names"}, secrets.map((name) => h("li", {},
          h("span", {}, schemaTitle(credSchema, name)), " ", h("span", {class: "muted"}, "stored, write-only"))))
        : h("p", {class: "muted"}, "No secret stored."),
      h("h3", {}, "Options"),
      props([
        ["Severity threshold", integration.severity_threshold],
        ["Unsigned webhooks accepted", text(integration.allow_unsigned_webhooks)],
        ["Created", stamp(integration.created_at)],
        ["Updated", stamp(integration.updated_at)],
      ]),
      (integration.warnings || []).length
        ? notice("warning", h("strong", {}, "Warnings"), h("ul", {}, integration.warnings.map((w) => h("li", {}, w))))
        : null);
  }

  // ---- health ---------------------------------------------------------------------------------------------
  const testOutcome = h("div", {class: "outcome", "aria-live": "polite"});
  function drawHealth() {
    const last = integration.last_test;
    const pairs = [["Last tested", stamp(integration.last_tested_at), {id: "last-tested"}]];
    if (last && typeof last === "object") {
      pairs.push(["Last test outcome", h("span", {class: `badge ${last.ok ? "good" : "bad"}`},
        last.ok ? "passed" : "failed")]);
      if (last.at) pairs.push(["Last test run", stamp(last.at)]);
      if (last.latency_ms !== undefined && last.latency_ms !== null) {
        pairs.push(["Latency", `${Math.round(last.latency_ms)} ms`]);
      }
      if (last.product) pairs.push(["Product", last.product]);
      if (last.version) pairs.push(["Version", last.version]);
      if (last.license_expires_at) pairs.push(["Licence expires", stamp(last.license_expires_at)]);
      if (last.step) pairs.push(["Failed step", h("code", {}, last.step)]);
    }
    replace(areas.health, props(pairs));
  }

  async function runTest(btn) {
    btn.disabled = true;
    replace(testOutcome, h("p", {class: "muted"}, "Testing the connection…"));
    try {
      const result = await api("POST", `/integrations/${id}/test`);
      replace(testOutcome, testResult(result));
      await refresh();
    } catch (err) {
      replace(testOutcome, errorNotice(err));
    } finally {
      btn.disabled = false;
    }
  }

  // ---- sync -----------------------------------------------------------------------------------------------
  const syncJob = h("div", {class: "outcome", "aria-live": "polite"});
  function drawSyncMeta() {
    const last = integration.last_sync;
    const pairs = [["Last synced", stamp(integration.last_synced_at), {id: "last-synced"}],
      ["Next scheduled sync", stamp(integration.next_sync_at, "none scheduled")]];
    const parts = [props(pairs)];
    if (last && typeof last === "object") {
      parts.push(h("h3", {}, "Last sync"), props([
        ["Outcome", h("span", {class: `badge ${last.status === "ok" ? "good" : "bad"}`}, text(last.status))],
        ["Started", stamp(last.started_at)],
        ["Finished", stamp(last.finished_at)],
        ["Full", text(last.full)],
      ]));
      if (last.error) parts.push(jobError(last.error));
      if (last.summary) parts.push(summaryList(last.summary, {title: "Last sync summary"}));
    }
    replace(areas.sync, parts);
  }

  // ---- schedules ------------------------------------------------------------------------------------------
  function drawSchedules() {
    replace(areas.schedules, props([
      ["Sync schedule", integration.sync_schedule ? h("code", {}, integration.sync_schedule) : "none"],
      ["Next sync due", stamp(integration.next_sync_at, "—")],
      ["Webhook secret rotation schedule", integration.webhook_rotation_schedule
        ? h("code", {}, integration.webhook_rotation_schedule) : "none"],
      ["Next rotation due", stamp(integration.next_webhook_rotation_at, "—")],
    ]));
  }

  drawHeader();
  drawSettings();
  drawHealth();
  drawSyncMeta();
  drawSchedules();

  const sections = [
    h("div", {class: "card detail-head"}, areas.header),
    section("settings", "Settings", areas.settings),
    section("health", "Health", areas.health,
      ctx.can.operate ? h("div", {class: "row"}, h("button", {type: "button", class: "primary",
        onclick: (e) => runTest(e.currentTarget)}, "Test connection")) : null,
      testOutcome),
    section("sync", "Sync", areas.sync,
      ctx.can.operate && supports(type, SYNC_OPS) ? syncForm() : null,
      supports(type, SYNC_OPS) ? null : h("p", {class: "muted"}, "This vendor type has no findings sync."),
      syncJob),
  ];
  if (supports(type, SCAN_OPS)) sections.push(scanSection());
  if (ctx.can.operate && type && (type.operations || []).includes("check_permissions")) {
    sections.push(permissionsSection());
  }
  if (type && ((type.report_formats || []).length || type.file_only)) sections.push(importSection());
  sections.push(jobsSection());
  sections.push(section("schedules", "Schedules", areas.schedules, ctx.can.operate ? scheduleForm() : null));

  const webhook = h("section",
    {id: "webhook-panel", class: "card detail-section", "aria-labelledby": "webhook-heading"},
    h("h2", {id: "webhook-heading"}, "Webhook"));
  replace(root, h("div", {class: "detail"}, sections), webhook);
  const panel = await import("./webhook_panel.js");
  await panel.renderWebhookPanel(webhook, integration, ctx);

  // ---- pieces that need the closures above ---------------------------------------------------------------

  function syncForm() {
    const full = h("input", {type: "checkbox"});
    const box = h("div", {class: "check"}, field("sync-full", "Full sync", full, {
      description: "Pull everything the vendor holds and resolve what it no longer holds; unticked, only what "
        + "changed since the last successful sync (where the vendor can tell).",
    }));
    const go = h("button", {type: "button", class: "primary", onclick: async () => {
      go.disabled = true;
      try {
        const accepted = await api("POST", `/integrations/${id}/sync`, {json: {full: full.checked}});
        reloadJobs();
        followJob(accepted.job, syncJob, {title: "Sync", canCancel: true, onDone: () => {
          go.disabled = false;
          refresh();
        }});
      } catch (err) {
        go.disabled = false;
        replace(syncJob, errorNotice(err));
      }
    }}, "Sync now");
    return h("div", {class: "row"}, box, go);
  }

  function scanSection() {
    const launches = h("div");
    const outcome = h("div", {class: "outcome", "aria-live": "polite"});
    async function loadLaunches() {
      try {
        const page = await api("GET", `/integrations/${id}/scans`);
        replace(launches, table([
          {label: "Launched", cell: (r) => timeAgo(r.created_at)},
          {label: "Vendor scan", cell: (r) => r.vendor_scan_id},
          {label: "Vendor run", cell: (r) => text(r.vendor_run_ref)},
          {label: "State", cell: (r) => h("span", {class: `badge ${r.state === "completed" ? "good"
            : r.state === "failed" ? "bad" : "warn"}`}, r.state)},
          {label: "Vendor status", cell: (r) => text(r.vendor_status)},
          {label: "Outcome", cell: (r) => r.error ? text(r.error.message || r.error.code)
            : shortSummary(r.summary)},
          {label: "By", cell: (r) => r.actor},
        ], page.items || [], {caption: "Scan launches", empty: "No scan launched yet."}));
      } catch (err) {
        replace(launches, errorNotice(err));
      }
    }
    refreshers.push(loadLaunches);
    loadLaunches();
    let form = null;
    if (ctx.can.operate) {
      const scanId = h("input", {type: "text", name: "scan_id", required: true, maxlength: "500"});
      const error = h("div", {class: "field-error error", id: "scan-id-error"});
      const submit = h("button", {type: "submit", class: "primary"}, "Launch scan");
      form = h("form", {class: "scan-form", novalidate: true, onsubmit: async (e) => {
        e.preventDefault();
        replace(error);
        if (!scanId.value.trim()) {
          replace(error, "Enter the vendor's scan id.");
          return;
        }
        submit.disabled = true;
        try {
          const accepted = await api("POST", `/integrations/${id}/scans`, {json: {scan_id: scanId.value.trim()}});
          loadLaunches();
          reloadJobs();
          followJob(accepted.job, outcome, {title: "Scan", canCancel: true, onDone: () => {
            submit.disabled = false;
            loadLaunches();
            refresh();
          }});
        } catch (err) {
          submit.disabled = false;
          const reason = fieldError(err, "scan_id");
          if (reason) replace(error, reason);
          replace(outcome, errorNotice(err));
        }
      }},
      field("scan-id", "Scan ID", scanId, {required: true, description: "The vendor's scan, policy or target id "
        + "(ZAP: the target URL; Qualys VMDR: <option profile id>:<targets>)."}),
      error, submit);
      scanId.setAttribute("aria-describedby", "scan-id-help scan-id-error");
    }
    return section("scans", "Scans", form, outcome, launches);
  }

  function permissionsSection() {
    const out = h("div", {class: "outcome", "aria-live": "polite"});
    const btn = h("button", {type: "button", class: "primary", onclick: async () => {
      btn.disabled = true;
      replace(out, h("p", {class: "muted"}, "Checking the stored credentials' rights on the vendor…"));
      try {
        replace(out, permissionReport(await api("POST", `/integrations/${id}/permissions-check`)));
      } catch (err) {
        replace(out, errorNotice(err));
      } finally {
        btn.disabled = false;
      }
    }}, "Check permissions");
    return section("permissions", "Permissions",
      h("p", {class: "muted"}, "What the stored credentials may do on the vendor, against what PMAP needs "
        + "(least privilege)."),
      btn, out);
  }

  function importSection() {
    const recent = h("div");
    async function loadImports() {
      try {
        const page = await api("GET", `/integrations/${id}/imports`, {query: {limit: 20}});
        replace(recent, table([
          {label: "Imported", cell: (r) => timeAgo(r.created_at)},
          {label: "File", cell: (r) => text(r.filename)},
          {label: "Format", cell: (r) => r.format},
          {label: "Scope", cell: (r) => r.scope},
          {label: "Full", cell: (r) => text(r.full)},
          {label: "Summary", cell: (r) => shortSummary(r.summary)},
          {label: "By", cell: (r) => r.actor},
        ], page.items || [], {caption: `Imports (${page.total})`, empty: "No report imported yet."}));
      } catch (err) {
        replace(recent, errorNotice(err));
      }
    }
    refreshers.push(loadImports);
    loadImports();
    const findingsLink = h("p", {}, h("a", {href: `/findings?integration_id=${encodeURIComponent(id)}`},
      "Findings of this integration"));
    if (!ctx.can.operate) return section("imports", "Imports", findingsLink, recent);

    const file = h("input", {type: "file", name: "file", required: true});
    const format = h("select", {name: "format"}, h("option", {value: ""}, "Detect from the file"),
      (type.report_formats || []).map((f) => h("option", {value: f}, f)));
    const scope = h("input", {type: "text", name: "scope", value: "default", maxlength: "200"});
    const full = h("input", {type: "checkbox", name: "full", checked: true});
    const resolve = h("select", {name: "resolve"},
      h("option", {value: "covered"}, "covered — only findings on resources the report covered"),
      h("option", {value: "scope"}, "scope — every finding of the scope the report lacks"));
    const bar = h("progress", {max: "1", value: "0", "aria-label": "Upload progress", class: "hidden"});
    const outcome = h("div", {class: "outcome", "aria-live": "polite"});
    const fileError = h("div", {class: "field-error error", id: "report-file-error"});
    const submit = h("button", {type: "submit", class: "primary"}, "Import report");
    const form = h("form", {class: "import-form", novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      replace(fileError);
      if (!file.files || !file.files.length) {
        replace(fileError, "Choose a report file.");
        return;
      }
      const data = new FormData();
      data.append("file", file.files[0], file.files[0].name);
      if (format.value) data.append("format", format.value);
      data.append("scope", scope.value.trim() || "default");
      data.append("full", full.checked ? "true" : "false");
      data.append("resolve", resolve.value);
      submit.disabled = true;
      bar.value = 0;
      bar.classList.remove("hidden");
      replace(outcome, h("p", {class: "muted"}, "Uploading…"));
      try {
        const answer = await upload(`/integrations/${id}/imports`, data, (fraction) => { bar.value = fraction; });
        bar.value = 1;
        if (answer && answer.job) {
          reloadJobs();
          followJob(answer.job, outcome, {title: "Import", canCancel: true, onDone: () => {
            submit.disabled = false;
            refresh();
          }});
        } else {
          submit.disabled = false;
          replace(outcome, notice("ok", "Report imported."), summaryList(answer, {title: "Import summary"}),
            findingsLink.cloneNode(true));
          loadImports();
        }
      } catch (err) {
        submit.disabled = false;
        bar.classList.add("hidden");
        const reason = fieldError(err, "file") || fieldError(err, "format");
        if (reason) replace(fileError, reason);
        replace(outcome, errorNotice(err));
      }
    }},
    field("report-file", "Report file", file, {required: true, description: `Formats this vendor type imports: `
      + `${(type.report_formats || []).join(", ")}.`}),
    fileError,
    field("report-format", "Format", format),
    field("report-scope", "Scope", scope, {description: "A stream of reports within the integration: a newer full "
      + "report of the same format and scope resolves the findings it no longer contains."}),
    h("div", {class: "check"}, field("report-full", "Full report", full, {description: "Untick for a partial "
      + "report: nothing is resolved."})),
    field("report-resolve", "Resolve", resolve, {description: "What a full report resolves of the scope's findings "
      + "it lacks. covered: only those on a host, site, repository or asset the report covered, so two scans of "
      + "different hosts never resolve each other's findings (an empty report resolves nothing). scope: every "
      + "finding of the scope it lacks, even when the report is empty."}),
    submit);
    file.setAttribute("aria-describedby", "report-file-help report-file-error");
    return section("imports", "Import a report", form, bar, outcome, findingsLink, recent);
  }

  function jobsSection() {
    const list = h("div");
    async function loadJobs() {
      try {
        const page = await api("GET", "/jobs", {query: {limit: 20, integration_id: id}});
        const mine = page.items || [];
        replace(list, table([
          {label: "Created", cell: (j) => timeAgo(j.created_at)},
          {label: "Kind", cell: (j) => j.kind},
          {label: "Status", cell: (j) => progressView(j)},
          {label: "Finished", cell: (j) => j.finished_at ? timeAgo(j.finished_at) : "—"},
          {label: "Summary", cell: (j) => j.status === "failed" ? text((j.error || {}).message)
            : shortSummary(j.result)},
        ], mine, {caption: "Recent jobs", empty: "No job for this integration yet."}));
        return mine.every((j) => ENDED.has(j.status));
      } catch (err) {
        replace(list, errorNotice(err));
        return true;
      }
    }
    let stop = null;
    const watch = async () => {
      const settled = await loadJobs();
      if (!settled && !stop) {
        stop = poll(async () => {
          const done = await loadJobs();
          if (done) stop = null;
          return done;
        }, 2000);
      }
    };
    refreshers.push(watch);
    reloadJobs = watch;
    watch();
    return section("jobs", "Jobs", h("div", {class: "row"}, button("Refresh jobs", () => loadJobs())), list);
  }

  function scheduleForm() {
    const parts = [];
    const inputs = {};
    const errors = {};
    const mk = (name, label, value, description) => {
      const input = h("input", {type: "text", name, value: value || "", placeholder: "none", maxlength: "200",
        spellcheck: "false", autocomplete: "off"});
      const err = h("div", {class: "field-error error", id: `${name}-error`});
      inputs[name] = input;
      errors[name] = err;
      const wrapped = field(`schedule-${name}`, label, input, {description});
      input.setAttribute("aria-describedby", `schedule-${name}-help ${name}-error`);
      parts.push(wrapped, err);
    };
    mk("sync_schedule", "Sync schedule (cron)", integration.sync_schedule,
      "Five fields in UTC (minute hour day-of-month month day-of-week), e.g. 0 3 * * 1; blank for none.");
    if (ctx.can.admin) {
      mk("webhook_rotation_schedule", "Webhook secret rotation schedule (cron)", integration.webhook_rotation_schedule,
        "Five fields in UTC; blank for none. Each rotation keeps the old secret valid for a grace period.");
    }
    const status = h("div", {"aria-live": "polite"});
    const save = h("button", {type: "submit", class: "primary"}, "Save schedules");
    return h("form", {class: "schedule-form", novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      Object.values(errors).forEach((el) => replace(el));
      replace(status);
      const body = {};
      for (const [name, input] of Object.entries(inputs)) {
        const value = input.value.trim() || null;
        if (value !== (integration[name] || null)) body[name] = value;
      }
      if (!Object.keys(body).length) {
        replace(status, notice("info", "Nothing changed."));
        return;
      }
      save.disabled = true;
      try {
        integration = await api("PATCH", `/integrations/${id}`, {json: body});
        replace(status, notice("ok", "Schedules saved."));
        await refresh();
      } catch (err) {
        let placed = false;
        for (const name of Object.keys(inputs)) {
          const reason = fieldError(err, name);
          if (reason) {
            replace(errors[name], reason);
            inputs[name].setAttribute("aria-invalid", "true");
            placed = true;
          }
        }
        if (!placed) replace(status, errorNotice(err));
      } finally {
        save.disabled = false;
      }
    }}, h("h3", {}, "Edit schedules"), parts, save, status);
  }
}

/** The outcome of a connection test: latency, product, version, licence, warnings; or the failed step. */
function testResult(result) {
  const details = [];
  if (result.latency_ms !== null && result.latency_ms !== undefined) {
    details.push(["Latency", `${Math.round(result.latency_ms)} ms`]);
  }
  if (result.product) details.push(["Product", result.product]);
  if (result.version) details.push(["Version", result.version]);
  if (result.license && typeof result.license === "object") {
    details.push(["Licence", Object.entries(result.license).map(([k, v]) => `${k}: ${text(v)}`).join(", ")]);
  }
  const warnings = result.warnings || [];
  return h("div", {class: "test-result"},
    result.ok ? notice("ok", h("strong", {}, "Connection OK."))
      : notice("error", h("strong", {}, "Connection failed."),
        result.failed_step ? h("div", {class: "step"}, "Failed step: ", h("code", {}, result.failed_step)) : null,
        result.message ? h("div", {class: "hint"}, result.message) : null),
    details.length ? props(details) : null,
    warnings.length ? notice("warning", h("strong", {}, "Warnings"), h("ul", {}, warnings.map((w) => h("li", {}, w))))
      : null);
}

const GROUPS = [
  ["granted", "Granted", "Rights PMAP needs that the credentials have."],
  ["missing", "Missing", "Rights PMAP needs that the credentials lack: the operations named fail until they are "
    + "granted."],
  ["excess", "Excess", "Rights the credentials have beyond what PMAP needs: remove them (least privilege)."],
  ["unknown", "Unknown", "Rights the vendor would not tell about: check them on the vendor's side."],
];

/** The least-privilege report as four groups: granted, missing, excess, unknown. */
function permissionReport(report) {
  const perms = report.permissions || [];
  const items = {
    granted: perms.filter((p) => p.state === "granted"),
    missing: perms.filter((p) => p.state === "missing"),
    unknown: perms.filter((p) => p.state === "unknown"),
    excess: (report.excess || []).map((name) => ({name, needed_for: null})),
  };
  return h("div", {class: "permission-report"},
    report.ok ? notice("ok", "The credentials have what PMAP needs.")
      : notice("warning", "The credentials do not have everything PMAP needs, or have more."),
    h("div", {class: "grid perm-groups"}, GROUPS.map(([key, title, help]) => h("section", {
      class: `perm-group perm-${key}`, "aria-labelledby": `perm-${key}-heading`},
    h("h3", {id: `perm-${key}-heading`}, `${title} (${items[key].length})`),
    h("p", {class: "muted small"}, help),
    items[key].length ? h("ul", {}, items[key].map((p) => h("li", {}, h("code", {}, p.name),
      p.needed_for ? [" — ", h("span", {}, `needed for ${p.needed_for}`)] : null)))
      : h("p", {class: "muted"}, "None.")))),
    (report.warnings || []).length
      ? notice("warning", h("ul", {}, report.warnings.map((w) => h("li", {}, w)))) : null);
}
