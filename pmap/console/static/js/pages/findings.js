// The findings list: every filter GET /api/v1/findings takes, kept in the page's query string (a filtered view
// can be linked), counts per severity and per integration drawn as charts, and cursor pagination.
import {api, ApiError} from "../api.js";
import {barChart, stackedChart} from "../chart.js";
import {errorNotice, field, h, notice, replace, SEVERITIES, severityBadge, table, timeAgo} from "../dom.js";

const ALL_SEVERITIES = [...SEVERITIES, "unknown"];
const STATUSES = ["open", "resolved", "suppressed", "filtered"];
// text filters the API takes: [query name, label, input type, description]
const MAIN_TEXT = [
  ["title", "Title contains", "search", "Case-insensitive."],
  ["vuln_id", "Vulnerability id", "text", "CVE, CWE-n, GHSA/advisory or vendor rule id."],
  ["resource", "Resource", "text", "Equals a host, ip, URL, repository, file path, package or asset."],
];
const MORE_TEXT = [
  ["host", "Host", "text"], ["ip", "IP address", "text"], ["port", "Port", "number"], ["url", "URL", "text"],
  ["repository", "Repository", "text"], ["file_path", "File path", "text"], ["package_name", "Package", "text"],
  ["scope", "Scope", "text"], ["format", "Report format", "text"], ["tag", "Tag", "text"],
];
const MULTI = ["severity", "status"];
const PAGE_SIZE = 50;

function cap(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The filters in the page's query string: {name: string | string[]} (severity and status are lists). */
function filtersFromUrl() {
  const params = new URLSearchParams(window.location.search);
  const out = {};
  const one = ["integration_id", ...MAIN_TEXT.map((f) => f[0]), ...MORE_TEXT.map((f) => f[0])];
  for (const name of one) {
    const value = (params.get(name) || "").trim();
    if (value) out[name] = value;
  }
  for (const name of MULTI) {
    const values = params.getAll(name).flatMap((v) => v.split(",")).map((v) => v.trim().toLowerCase())
      .filter(Boolean);
    if (values.length) out[name] = [...new Set(values)];
  }
  return out;
}

function queryString(filters) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(filters)) {
    if (Array.isArray(value)) value.forEach((v) => params.append(name, v));
    else if (value !== "") params.set(name, value);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

async function allIntegrations() {
  const items = [];
  let cursor = null;
  for (let i = 0; i < 20; i += 1) { // at most 4000 integrations in the select
    const page = await api("GET", "/integrations", {query: {limit: 200, cursor}});
    items.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) break;
  }
  return items;
}

export async function render(root, ctx) {
  let integrations = [];
  let integrationsError = null;
  try {
    integrations = await allIntegrations();
  } catch (err) {
    integrationsError = err;
  }
  const byId = new Map(integrations.map((i) => [i.id, i]));

  const form = h("form", {class: "card", role: "search", "aria-label": "Filter findings"});
  const countsSection = h("section", {"aria-labelledby": "counts-heading"},
    h("h2", {id: "counts-heading"}, "Counts"));
  const countsBody = h("div", {class: "counts"});
  countsSection.append(countsBody);
  const listSection = h("section", {"aria-labelledby": "list-heading"}, h("h2", {id: "list-heading"}, "Findings"));
  const listBody = h("div", {});
  listSection.append(listBody);
  replace(root, integrationsError ? errorNotice(integrationsError) : null, form, countsSection, listSection);

  let pages = []; // cursors of the pages before this one (for "Previous")
  let cursor = null;
  let loadSeq = 0;

  function drawForm(filters) {
    const integrationSelect = h("select", {name: "integration_id"},
      h("option", {value: ""}, "Any integration"),
      integrations.map((i) => h("option", {value: i.id, selected: filters.integration_id === i.id},
        `${i.name} (${i.vendor})`)));
    if (filters.integration_id && !byId.has(filters.integration_id)) {
      integrationSelect.append(h("option", {value: filters.integration_id, selected: true}, filters.integration_id));
    }
    const checks = (name, legend, values) => h("fieldset", {class: "checks"}, h("legend", {}, legend),
      values.map((v) => {
        const id = `f-${name}-${v}`;
        return h("span", {class: "check"},
          h("input", {type: "checkbox", id, name, value: v, checked: (filters[name] || []).includes(v)}),
          h("label", {for: id}, cap(v)));
      }));
    const text = ([name, label, type, description]) => field(`f-${name}`, label,
      h("input", {type, name, value: filters[name] || "", ...(type === "number" ? {min: 0, max: 65535} : {})}),
      {description});
    const moreOpen = MORE_TEXT.some(([name]) => filters[name]);
    replace(form,
      h("div", {class: "filters"},
        field("f-integration", "Integration", integrationSelect),
        MAIN_TEXT.map(text)),
      h("div", {class: "filters"}, checks("severity", "Severity", ALL_SEVERITIES), checks("status", "Status", STATUSES)),
      h("details", {open: moreOpen}, h("summary", {}, "More filters"), h("div", {class: "filters"}, MORE_TEXT.map(text))),
      h("div", {class: "row"},
        h("button", {type: "submit", class: "primary"}, "Apply filters"),
        h("a", {href: "/findings", class: "btn"}, "Clear filters")));
  }

  function readForm() {
    const data = new FormData(form);
    const filters = {};
    for (const [name, value] of data.entries()) {
      if (MULTI.includes(name)) (filters[name] = filters[name] || []).push(String(value));
      else if (String(value).trim()) filters[name] = String(value).trim();
    }
    return filters;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const filters = readForm();
    window.history.pushState(null, "", `/findings${queryString(filters)}`);
    pages = [];
    cursor = null;
    load(filters);
  });
  window.addEventListener("popstate", () => {
    const filters = filtersFromUrl();
    drawForm(filters);
    pages = [];
    cursor = null;
    load(filters);
  });

  async function loadCounts(filters, seq) {
    replace(countsBody, h("p", {class: "muted"}, "Counting…"));
    let counts;
    try {
      counts = await api("GET", "/findings/counts", {query: filters});
    } catch (err) {
      if (seq !== loadSeq) return;
      if (countsMissing(err)) {
        replace(countsBody, notice("info", "Counts are not available from this server (GET /api/v1/findings/counts)."));
      } else {
        replace(countsBody, errorNotice(err));
      }
      return;
    }
    if (seq !== loadSeq) return;
    const bySeverity = counts.by_severity || {};
    const keys = ALL_SEVERITIES.filter((s) => s !== "unknown" || bySeverity.unknown);
    const severityChart = barChart("Findings by severity",
      keys.map((s) => ({key: s, label: cap(s), value: bySeverity[s] || 0,
        href: `/findings${queryString({...filters, severity: [s]})}`})), {id: "chart-severity"});
    const rows = (counts.by_integration || []).map((i) => ({
      label: (byId.get(i.integration_id) || {}).name || i.name || i.integration_id,
      total: i.total, parts: i.by_severity || {},
      href: `/findings${queryString({...filters, integration_id: i.integration_id})}`,
    }));
    const integrationChart = rows.length
      ? stackedChart("Findings by integration", rows, keys, {keyLabel: cap, id: "chart-integration"})
      : h("p", {class: "muted"}, "No findings in any integration.");
    replace(countsBody, h("p", {}, h("strong", {}, String(counts.total)), ` finding${counts.total === 1 ? "" : "s"} match.`),
      h("div", {class: "chart-grid"}, severityChart, integrationChart));
  }

  async function loadPage(filters, seq) {
    replace(listBody, h("p", {class: "muted"}, "Loading findings…"));
    let page;
    try {
      page = await api("GET", "/findings", {query: {...filters, limit: PAGE_SIZE, cursor}});
    } catch (err) {
      if (seq === loadSeq) replace(listBody, errorNotice(err));
      return;
    }
    if (seq !== loadSeq) return;
    const columns = [
      {label: "Severity", cell: (f) => severityBadge(f.severity)},
      {label: "Title", cell: (f) => h("a", {href: `/findings/${encodeURIComponent(f.id)}`}, f.title)},
      {label: "Integration", cell: (f) => {
        const i = byId.get(f.integration_id);
        return i ? h("a", {href: `/integrations/${encodeURIComponent(i.id)}`}, i.name) : h("code", {}, f.integration_id);
      }},
      {label: "Resource", cell: (f) => resourceOf(f)},
      {label: "Status", cell: (f) => h("span", {class: `badge ${f.status === "open" ? "bad" : "good"}`}, f.status)},
      {label: "Last seen", cell: (f) => timeAgo(f.last_seen)},
    ];
    const pager = h("nav", {class: "pager", "aria-label": "Findings pages"},
      h("button", {type: "button", disabled: !pages.length, onclick: () => {
        cursor = pages.pop() || null;
        loadPage(filters, loadSeq);
      }}, "Previous page"),
      h("span", {class: "muted"}, `Page ${pages.length + 1}`),
      h("button", {type: "button", disabled: !page.next_cursor, onclick: () => {
        pages.push(cursor);
        cursor = page.next_cursor;
        loadPage(filters, loadSeq);
      }}, "Next page"));
    replace(listBody,
      table(columns, page.items, {caption: "Findings, newest first", empty: "No finding matches these filters."}),
      pager);
  }

  function load(filters) {
    loadSeq += 1;
    const seq = loadSeq;
    loadCounts(filters, seq);
    return loadPage(filters, seq);
  }

  const filters = filtersFromUrl();
  drawForm(filters);
  await load(filters);
}

/** True when the server has no GET /findings/counts: not found, or the path read as /findings/{finding_id}
 * (a 422 naming finding_id, or refusing the filters as query parameters that route does not take). */
function countsMissing(err) {
  if (!(err instanceof ApiError)) return false;
  if (err.status === 404 || err.status === 405) return true;
  if (err.status !== 422) return false;
  const fields = (err.body && err.body.error && err.body.error.fields) || [];
  return fields.some((f) => String(f.field).endsWith("finding_id") ||
    String(f.reason || "").includes("is not a query parameter"));
}

function resourceOf(f) {
  if (f.asset) return f.asset;
  if (f.host || f.ip) return `${f.host || f.ip}${f.port !== null && f.port !== undefined ? `:${f.port}` : ""}`;
  if (f.url) return f.url;
  if (f.repository) return f.file_path ? `${f.repository}: ${f.file_path}` : f.repository;
  if (f.package_name) return f.package_version ? `${f.package_name} ${f.package_version}` : f.package_name;
  return h("span", {class: "muted"}, "—");
}
