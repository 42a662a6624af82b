// The audit log (admins): GET /audit-events with every filter it accepts (action, outcome, integration,
// purpose), newest first, cursor pages; each event's detail drawn as text.
import {api} from "../api.js";
import {button, errorNotice, field, h, notice, replace, table, timeAgo, when} from "../dom.js";

/** What the API documents of GET /audit-events (its OpenAPI document): the action vocabulary and the names
 * of the filters it takes; nulls when it cannot be read (the page then asks for an action as text). */
async function auditDescription() {
  try {
    const response = await fetch("/openapi.json", {credentials: "same-origin", cache: "no-store",
      headers: {Accept: "application/json"}, redirect: "error"});
    if (!response.ok) return {actions: null, params: new Set()};
    const spec = await response.json();
    const schemas = (spec && spec.components && spec.components.schemas) || {};
    const values = schemas.AuditAction && schemas.AuditAction.enum;
    const operation = spec && spec.paths && spec.paths["/api/v1/audit-events"] && spec.paths["/api/v1/audit-events"].get;
    const params = new Set(((operation && operation.parameters) || []).map((p) => p && p.name));
    return {actions: Array.isArray(values) ? values.filter((v) => typeof v === "string") : null, params};
  } catch (err) {
    return {actions: null, params: new Set()};
  }
}

/** A datetime-local value as an ISO instant (the reader's time zone), or "" when empty or invalid. */
function instant(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

/** Every integration's name by id (to name and filter them); a failure only costs the names. */
async function integrationNames() {
  const names = new Map();
  let cursor = null;
  try {
    for (let i = 0; i < 10; i += 1) {
      const page = await api("GET", "/integrations", {query: {limit: 200, cursor}});
      for (const item of page.items) names.set(item.id, item.name);
      cursor = page.next_cursor;
      if (!cursor) break;
    }
  } catch (err) { /* names are a convenience: the log still lists */ }
  return names;
}

function select(options, anyLabel) {
  return h("select", {}, h("option", {value: ""}, anyLabel),
    options.map(([value, label]) => h("option", {value}, label)));
}

function detailText(detail) {
  if (!detail || (typeof detail === "object" && !Object.keys(detail).length)) return null;
  return JSON.stringify(detail, null, 2);
}

export async function render(root, ctx) {
  const [{actions, params}, names] = await Promise.all([auditDescription(), integrationNames()]);
  const action = actions
    ? select(actions.map((a) => [a, a]), "Any action")
    : h("input", {type: "text", autocomplete: "off", placeholder: "integration.create"});
  const outcome = select([["success", "success"], ["failure", "failure"]], "Any outcome");
  const integration = select([...names.entries()].sort((a, b) => a[1].localeCompare(b[1])), "Any integration");
  const purpose = h("input", {type: "text", autocomplete: "off", maxlength: "64", placeholder: "sync"});
  // filters the API documents beyond these four (an actor, a time range) are offered when it takes them
  const actor = params.has("actor") ? h("input", {type: "text", autocomplete: "off", maxlength: "200"}) : null;
  const since = params.has("since") ? h("input", {type: "datetime-local"}) : null;
  const until = params.has("until") ? h("input", {type: "datetime-local"}) : null;
  const limit = h("select", {}, ["10", "25", "50", "100", "200"].map((n) => h("option", {value: n, selected: n === "100"}, n)));
  const form = h("form", {class: "filters", role: "search", "aria-label": "Filter audit events"},
    field("audit-action", "Action", action),
    field("audit-outcome", "Outcome", outcome),
    field("audit-integration", "Integration", integration),
    field("audit-purpose", "Purpose", purpose),
    actor ? field("audit-actor", "Actor", actor) : null,
    since ? field("audit-since", "From", since) : null,
    until ? field("audit-until", "Until", until) : null,
    field("audit-limit", "Per page", limit),
    h("div", {class: "row"}, h("button", {type: "submit", class: "primary"}, "Apply filters"),
      button("Clear filters", () => { form.reset(); load([]); })));
  const results = h("div", {class: "audit-results", "aria-live": "polite"});
  replace(root,
    h("p", {class: "muted"}, "What was done in this organization, by whom, and how it ended: newest first."),
    form, results);

  // pages: the cursors that led to the current page (empty: the first page)
  let trail = [];
  // the latest request wins: filters applied while an earlier page is still loading abort it (dropping the
  // newer request instead drew the older, unfiltered page under the new filters)
  let seq = 0;
  let controller = null;

  async function load(nextTrail) {
    seq += 1;
    const mine = seq;
    controller?.abort();
    controller = new AbortController();
    const cursor = nextTrail.length ? nextTrail[nextTrail.length - 1] : null;
    const query = {limit: limit.value || 100, cursor, action: action.value.trim(), outcome: outcome.value,
      integration_id: integration.value, purpose: purpose.value.trim(), actor: actor ? actor.value.trim() : "",
      since: since ? instant(since.value) : "", until: until ? instant(until.value) : ""};
    results.setAttribute("aria-busy", "true");
    try {
      const page = await api("GET", "/audit-events", {query, signal: controller.signal});
      if (mine !== seq) return;
      trail = nextTrail;
      draw(page);
    } catch (err) {
      if (mine !== seq || (err && err.name === "AbortError")) return;
      replace(results, errorNotice(err));
    } finally {
      if (mine === seq) results.removeAttribute("aria-busy");
    }
  }

  /** The organization's audit chain as the API verified it: intact up to its head, or its first problem. */
  function chainNotice(chain) {
    if (!chain) return null;
    if (chain.verified) {
      return notice("ok", h("strong", {}, "Audit chain verified"),
        chain.head_seq === null ? " (no sealed event yet)." : ` up to event ${chain.head_seq}`,
        h("span", {class: "muted small"}, ` (checked ${when(chain.verified_at)}; the last events from the head; `
          + "`pmapctl audit verify` checks the whole chain)."));
    }
    const problem = chain.first_problem || {};
    return notice("error", h("strong", {}, "The audit chain does not verify"),
      h("div", {}, problem.message || problem.kind || "an event was edited, deleted, reordered or inserted"),
      problem.event_id ? h("div", {class: "small"}, "Event ", h("code", {}, problem.event_id),
        problem.seq !== null && problem.seq !== undefined ? ` (seq ${problem.seq})` : "") : null);
  }

  function integrationCell(id) {
    if (!id) return h("span", {class: "muted"}, "—");
    const name = names.get(id);
    return h("a", {href: `/integrations/${encodeURIComponent(id)}`}, name || id);
  }

  function draw(page) {
    const rows = page.items.map((event) => ({event}));
    const columns = [
      {label: "Seq", cell: ({event}) => event.seq === null || event.seq === undefined
        ? h("span", {class: "muted", title: "not sealed into the chain yet"}, "—") : String(event.seq)},
      {label: "When", cell: ({event}) => h("span", {}, timeAgo(event.created_at), h("div", {class: "muted small"},
        when(event.created_at)))},
      {label: "Actor", cell: ({event}) => h("span", {class: "actor"}, event.actor)},
      {label: "Action", cell: ({event}) => h("code", {}, event.action)},
      {label: "Outcome", cell: ({event}) => h("span", {class: `badge ${event.outcome === "success" ? "good" : "bad"}`},
        event.outcome)},
      {label: "Integration", cell: ({event}) => integrationCell(event.integration_id)},
      {label: "Purpose", cell: ({event}) => event.purpose || h("span", {class: "muted"}, "—")},
      {label: "Detail", cell: ({event}) => {
        const text = detailText(event.detail);
        return text ? h("pre", {class: "audit-detail"}, text) : h("span", {class: "muted"}, "—");
      }},
    ];
    const pageNo = trail.length + 1;
    const pager = h("nav", {class: "pager", "aria-label": "Audit pages"},
      button("Newest", () => load([]), {disabled: trail.length === 0}),
      button("Newer", () => load(trail.slice(0, -1)), {disabled: trail.length === 0}),
      h("span", {class: "muted"}, `Page ${pageNo}`),
      button("Older", () => load([...trail, page.next_cursor]), {disabled: !page.next_cursor}));
    replace(results,
      chainNotice(page.chain),
      h("p", {class: "muted", role: "status"}, `${page.items.length} event${page.items.length === 1 ? "" : "s"}`
        + ` on page ${pageNo}${page.next_cursor ? "; older ones follow" : ""}.`),
      table(columns, rows, {caption: "Audit events", empty: "No audit event matches these filters."}),
      pager);
  }

  form.addEventListener("submit", (e) => { e.preventDefault(); load([]); });
  await load([]);
  ctx.setTitle("Audit log");
}
