// One finding: its fields, evidence, occurrences, where its severity came from (vendor value, mapped value,
// the integration's threshold, the rule that set it), its tickets, and "Open a ticket" for operators.
import {api} from "../api.js";
import {errorNotice, field, h, notice, replace, severityBadge, table, timeAgo, when} from "../dom.js";

const SOURCES = {
  vendor: "the vendor's value, mapped by the report format",
  cvss: "the CVSS base score (the vendor's value did not map)",
  unmapped: "nothing mapped: kept as unknown for a person to triage",
  rule: "a rule of this organization",
};

function safeHref(value) {
  try {
    const u = new URL(String(value));
    return u.protocol === "https:" || u.protocol === "http:" ? u.href : null;
  } catch (e) {
    return null;
  }
}

/** A link when the value is an http(s) URL, else text (a javascript: URL in vendor data stays text). */
function maybeLink(value) {
  const href = safeHref(value);
  return href ? h("a", {href, rel: "noopener noreferrer", target: "_blank"}, String(value)) : String(value);
}

/** A value as text: long or multi-line text in <pre>. */
function textBlock(value) {
  const s = String(value);
  return s.length > 120 || s.includes("\n") ? h("pre", {}, s) : s;
}

function json(value) {
  return h("pre", {}, JSON.stringify(value, null, 2));
}

function props(pairs) {
  const shown = pairs.filter(([, v]) => v !== null && v !== undefined && v !== "" &&
    !(Array.isArray(v) && !v.length));
  return h("dl", {class: "props"}, shown.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v instanceof Node ? v
    : Array.isArray(v) ? v.join(", ") : textBlock(v))]));
}

export async function render(root, ctx) {
  let finding;
  try {
    finding = await api("GET", `/findings/${encodeURIComponent(ctx.params.findingId)}`);
  } catch (err) {
    replace(root, errorNotice(err));
    return;
  }
  ctx.setTitle(finding.title);
  const [integration, rule, suppressor] = await Promise.all([
    api("GET", `/integrations/${finding.integration_id}`).catch(() => null),
    finding.severity_rule_id ? api("GET", `/rules/${finding.severity_rule_id}`).catch(() => null) : null,
    finding.suppressed_by_rule_id ? api("GET", `/rules/${finding.suppressed_by_rule_id}`).catch(() => null) : null,
  ]);

  const ruleRef = (id, r) => (r
    ? h("span", {}, h("a", {href: `/rules#rule-${id}`}, r.name), " ", h("code", {class: "small"}, r.condition))
    : h("span", {}, h("code", {}, id), h("span", {class: "muted"}, " (the rule no longer exists)")));

  const summary = h("section", {"aria-labelledby": "summary-heading"}, h("h2", {id: "summary-heading"}, "Finding"),
    h("div", {class: "card"}, props([
      ["Title", finding.title],
      ["Severity", severityBadge(finding.severity)],
      ["Status", h("span", {class: `badge ${finding.status === "open" ? "bad" : "good"}`}, finding.status)],
      ["Integration", integration
        ? h("a", {href: `/integrations/${encodeURIComponent(integration.id)}`}, integration.name)
        : h("code", {}, finding.integration_id)],
      ["Format", finding.format], ["Scope", finding.scope], ["Asset", finding.asset],
      ["Tool", finding.tool], ["Vendor rule id", finding.rule_id],
      ["CVE", finding.cve_ids], ["CWE", finding.cwe_ids.map((n) => `CWE-${n}`)], ["Other ids", finding.other_ids],
      ["CVSS", finding.cvss_score !== null ? `${finding.cvss_score}${finding.cvss_version ? ` (v${finding.cvss_version})` : ""}`
        : null],
      ["CVSS vector", finding.cvss_vector],
      ["Host", finding.host], ["IP", finding.ip],
      ["Port", finding.port !== null ? `${finding.port}${finding.protocol ? `/${finding.protocol}` : ""}` : null],
      ["URL", finding.url ? maybeLink(finding.url) : null], ["Parameter", finding.parameter],
      ["Repository", finding.repository],
      ["File", finding.file_path ? `${finding.file_path}${finding.line !== null ? `:${finding.line}` : ""}` : null],
      ["Package", finding.package_name ? `${finding.package_name} ${finding.package_version || ""}`.trim() : null],
      ["Fixed in", finding.fixed_version],
      ["Tags", finding.tags],
      ["Occurrences", String(finding.occurrence_count)],
      ["First seen", when(finding.first_seen)], ["Last seen", timeAgo(finding.last_seen)],
      ["Resolved", finding.resolved_at ? when(finding.resolved_at) : null],
      ["Fingerprint", h("code", {}, finding.fingerprint)],
    ])));

  const provenance = h("section", {"aria-labelledby": "provenance-heading"},
    h("h2", {id: "provenance-heading"}, "Severity provenance"),
    h("div", {class: "card"},
      h("p", {class: "muted small"}, "Never the vendor's word as it is: the report format maps the vendor's value, ",
        "the integration's threshold drops what ranks below it, then the organization's rules may change it."),
      props([
        ["Vendor value", finding.vendor_severity !== null ? h("code", {}, finding.vendor_severity)
          : h("span", {class: "muted"}, "none given")],
        ["Mapped value", severityBadge(finding.mapped_severity)],
        ["Integration threshold", integration ? severityBadge(integration.severity_threshold)
          : h("span", {class: "muted"}, "unknown (integration not readable)")],
        ["Final severity", severityBadge(finding.severity)],
        ["Set by", `${finding.severity_source}: ${SOURCES[finding.severity_source] || ""}`],
        ["Rule that set it", finding.severity_rule_id ? ruleRef(finding.severity_rule_id, rule)
          : h("span", {class: "muted"}, "no rule")],
        ["Suppressed by", finding.suppressed_by_rule_id ? ruleRef(finding.suppressed_by_rule_id, suppressor) : null],
      ])));

  const evidence = h("section", {"aria-labelledby": "evidence-heading"}, h("h2", {id: "evidence-heading"}, "Evidence"),
    h("div", {class: "card"},
      finding.description ? [h("h3", {}, "Description"), h("pre", {}, finding.description)] : null,
      finding.remediation ? [h("h3", {}, "Remediation"), h("pre", {}, finding.remediation)] : null,
      finding.references.length ? [h("h3", {}, "References"),
        h("ul", {}, finding.references.map((r) => h("li", {}, maybeLink(r))))] : null,
      h("h3", {}, "Vendor evidence"),
      Object.keys(finding.extra || {}).length ? json(finding.extra) : h("p", {class: "muted"}, "None kept.")));

  const occurrences = h("section", {"aria-labelledby": "occurrences-heading"},
    h("h2", {id: "occurrences-heading"}, "Occurrences"),
    finding.occurrences.length
      ? table([
        {label: "#", cell: (o) => String(finding.occurrences.indexOf(o) + 1)},
        {label: "IP", cell: (o) => o.ip || ""},
        {label: "Other ids", cell: (o) => (o.other_ids || []).join(", ")},
        {label: "Evidence", cell: (o) => json(o.extra || {})},
      ], finding.occurrences, {caption: `${finding.occurrences.length} occurrences in the latest report`})
      : h("p", {class: "muted"}, "One occurrence in the latest report."));

  const tickets = h("section", {"aria-labelledby": "tickets-heading"}, h("h2", {id: "tickets-heading"}, "Tickets"));
  const ticketList = h("div", {});
  tickets.append(ticketList);
  replace(root, summary, provenance, evidence, occurrences, tickets);

  async function drawTickets(list) {
    let items = list;
    if (!items) {
      try {
        items = await api("GET", `/findings/${encodeURIComponent(finding.id)}/tickets`);
      } catch (err) {
        replace(ticketList, errorNotice(err));
        return;
      }
    }
    replace(ticketList, table([
      {label: "Tracker", cell: (t) => t.vendor},
      {label: "Key", cell: (t) => (t.key ? (safeHref(t.url) ? maybeLinkText(t.url, t.key) : t.key)
        : h("span", {class: "muted"}, "being opened"))},
      {label: "Status", cell: (t) => t.status || ""},
      {label: "Done", cell: (t) => (t.done ? "yes" : "no")},
      {label: "Opened", cell: (t) => timeAgo(t.opened_at)},
      {label: "Closed", cell: (t) => (t.closed_at ? timeAgo(t.closed_at) : "")},
      {label: "Reconcile", cell: (t) => (t.reconcile_error ? h("span", {class: "error"}, t.reconcile_error) : "")},
    ], items, {caption: "Tickets opened for this finding", empty: "No ticket has been opened for this finding."}));
  }
  await drawTickets(finding.tickets);

  if (ctx.can.operate) await drawOpenTicket(tickets, finding, () => drawTickets(null));
}

function maybeLinkText(url, text) {
  return h("a", {href: safeHref(url), rel: "noopener noreferrer", target: "_blank"}, text);
}

async function trackers() {
  const found = [];
  for (const category of ["ticketing", "itsm"]) {
    let cursor = null;
    for (let i = 0; i < 10; i += 1) {
      const page = await api("GET", "/integrations", {query: {category, enabled: true, limit: 200, cursor}});
      found.push(...page.items);
      cursor = page.next_cursor;
      if (!cursor) break;
    }
  }
  return found;
}

async function drawOpenTicket(section, finding, refresh) {
  const box = h("div", {class: "card"}, h("h3", {id: "open-ticket-heading"}, "Open a ticket"));
  section.append(box);
  let list;
  try {
    list = await trackers();
  } catch (err) {
    box.append(errorNotice(err));
    return;
  }
  if (!list.length) {
    box.append(h("p", {class: "muted"}, "No enabled ticketing integration: ",
      h("a", {href: "/integrations/new"}, "add one"), " to open tickets."));
    return;
  }
  const select = h("select", {required: true}, list.map((i) => h("option", {value: i.id}, `${i.name} (${i.vendor})`)));
  const project = h("input", {type: "text", maxlength: 200});
  const result = h("div", {});
  const submit = h("button", {type: "submit", class: "primary"}, "Open ticket");
  const form = h("form", {"aria-labelledby": "open-ticket-heading"},
    field("ticket-integration", "Ticketing integration", select, {required: true}),
    field("ticket-project", "Project", project, {description: "Leave blank for the integration's default project."}),
    h("div", {class: "row"}, submit), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    replace(result, notice("info", "Opening a ticket…"));
    try {
      const body = {integration_id: select.value};
      if (project.value.trim()) body.project = project.value.trim();
      const ticket = await api("POST", `/findings/${encodeURIComponent(finding.id)}/tickets`, {json: body});
      const href = safeHref(ticket.url);
      replace(result, notice("ok", "Ticket ", href ? maybeLinkText(ticket.url, ticket.key) : h("strong", {}, ticket.key),
        ` is open${ticket.status ? ` (${ticket.status})` : ""}.`));
      await refresh();
    } catch (err) {
      replace(result, errorNotice(err));
    } finally {
      submit.disabled = false;
    }
  });
  box.append(form);
}
