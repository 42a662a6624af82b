// The organization's integrations: name, vendor, category, enabled, health at a glance, last and next sync,
// webhook status. Filters and orders are the API's (name, vendor, category, enabled; sort), pages follow its
// cursor, so a column sort orders the whole list, not just the page on screen.
// Metadata only: the API never returns a secret, and nothing here asks for one.
import {api} from "../api.js";
import {ago, button, errorNotice, field, h, notice, replace, table, timeAgo, when} from "../dom.js";

const PAGE_SIZES = [10, 25, 50, 100];
const EXPIRY_WARN_DAYS = 30;

function categoryLabel(category) {
  return String(category || "").toUpperCase().replace(/_/g, " ");
}

/** Health at a glance: the last test's outcome and age (last_test when the API gives it, else last_tested_at),
 *  the licence's expiry, and the integration's standing warnings. */
function health(row) {
  const parts = [];
  const test = row.last_test;
  if (test && test.at) {
    parts.push(h("div", {},
      h("span", {class: `badge ${test.ok ? "good" : "bad"}`}, test.ok ? "test passed" : "test failed"), " ",
      timeAgo(test.at),
      test.latency_ms !== null && test.latency_ms !== undefined
        ? h("span", {class: "muted small"}, ` · ${Math.round(test.latency_ms)} ms`) : null,
      !test.ok && test.step ? h("div", {class: "small"}, "failed step: ", h("code", {}, test.step)) : null,
      test.ok && (test.product || test.version)
        ? h("div", {class: "muted small"}, [test.product, test.version].filter(Boolean).join(" ")) : null));
    if (test.license_expires_at) {
      const days = (new Date(test.license_expires_at).getTime() - Date.now()) / 86400000;
      if (days < 0) {
        parts.push(h("div", {}, h("span", {class: "badge bad"}, "licence expired"), " ",
          h("time", {datetime: test.license_expires_at, title: when(test.license_expires_at)},
            ago(test.license_expires_at))));
      } else if (days <= EXPIRY_WARN_DAYS) {
        parts.push(h("div", {}, h("span", {class: "badge warn"}, "licence expires"), " ",
          h("time", {datetime: test.license_expires_at, title: when(test.license_expires_at)},
            ago(test.license_expires_at))));
      }
    }
  } else if (row.last_tested_at) {
    parts.push(h("div", {}, h("span", {class: "badge good"}, "test passed"), " ", timeAgo(row.last_tested_at)));
  } else {
    parts.push(h("div", {}, h("span", {class: "badge"}, "not tested")));
  }
  for (const warning of row.warnings || []) {
    const licence = /licen[cs]e/i.test(warning);
    parts.push(h("div", {class: `small ${licence ? "error" : "warn-text"}`}, "⚠ ", warning));
  }
  return h("div", {class: "health"}, parts);
}

function lastSync(row) {
  const sync = row.last_sync;
  if (!sync) {
    return row.last_synced_at ? timeAgo(row.last_synced_at) : h("span", {class: "muted"}, "never");
  }
  const ok = sync.status === "ok";
  const at = sync.finished_at || sync.started_at || row.last_synced_at;
  const summary = sync.summary || sync.import || null;
  let detail = null;
  if (!ok) {
    detail = h("div", {class: "small"}, sync.step ? ["failed step: ", h("code", {}, sync.step)] : null,
      sync.error ? h("div", {class: "small"}, String(sync.error)) : null);
  } else if (summary && typeof summary === "object" && summary.total !== undefined) {
    detail = h("div", {class: "muted small"}, `${summary.total} findings`);
  }
  return h("div", {}, h("span", {class: `badge ${ok ? "good" : "bad"}`}, ok ? "ok" : (sync.status || "failed")), " ",
    at ? timeAgo(at) : null, detail);
}

function nextSync(row) {
  if (row.next_sync_at) return h("div", {}, timeAgo(row.next_sync_at), h("div", {class: "muted small"}, row.sync_schedule || ""));
  return h("span", {class: "muted"}, row.sync_schedule && !row.enabled ? "paused (disabled)" : "not scheduled");
}

function webhook(row) {
  return h("div", {},
    row.webhook_secret_configured ? h("span", {class: "badge good"}, "secret configured")
      : h("span", {class: "badge"}, "no secret"),
    row.allow_unsigned_webhooks ? h("div", {class: "small warn-text"}, "accepts unsigned deliveries") : null);
}

/** Column sort keys -> the API's sort fields (GET /integrations?sort=, "-" for descending). */
const API_SORT = {name: "name", vendor: "vendor", category: "category", tested: "last_tested_at",
  synced: "last_synced_at"};

function sortParam(sorted) {
  return `${sorted.dir === "desc" ? "-" : ""}${API_SORT[sorted.key]}`;
}

function fromSortParam(value) {
  const field = String(value || "").replace(/^-/, "");
  const key = Object.keys(API_SORT).find((k) => API_SORT[k] === field);
  return key ? {key, dir: String(value).startsWith("-") ? "desc" : "asc"} : null;
}

export async function render(root, ctx) {
  let types = [];
  try {
    types = await api("GET", "/connector-types");
  } catch (err) {
    replace(root, errorNotice(err));
    return;
  }
  const names = Object.fromEntries(types.map((t) => [t.vendor, t.display_name]));
  const categories = [...new Set(types.map((t) => t.category))].sort();
  const search = new URLSearchParams(window.location.search);
  const state = {
    name: search.get("name") || "",
    vendor: names[search.get("vendor")] ? search.get("vendor") : "",
    category: categories.includes(search.get("category")) ? search.get("category") : "",
    enabled: ["true", "false"].includes(search.get("enabled")) ? search.get("enabled") : "",
    limit: PAGE_SIZES.includes(Number(search.get("limit"))) ? Number(search.get("limit")) : 25,
    cursors: [null], // cursor of each page seen so far; the last is the current page's
    sorted: fromSortParam(search.get("sort")),
    page: null,
  };

  const nameInput = h("input", {type: "search", autocomplete: "off", value: state.name});
  const vendorSelect = h("select", {}, h("option", {value: ""}, "All vendors"),
    [...types].sort((a, b) => a.display_name.localeCompare(b.display_name))
      .map((t) => h("option", {value: t.vendor}, t.display_name)));
  vendorSelect.value = state.vendor;
  const categorySelect = h("select", {}, h("option", {value: ""}, "All categories"),
    categories.map((c) => h("option", {value: c}, categoryLabel(c))));
  categorySelect.value = state.category;
  const enabledSelect = h("select", {}, h("option", {value: ""}, "Enabled or not"),
    h("option", {value: "true"}, "Enabled"), h("option", {value: "false"}, "Disabled"));
  enabledSelect.value = state.enabled;
  const limitSelect = h("select", {}, PAGE_SIZES.map((n) => h("option", {value: String(n)}, String(n))));
  limitSelect.value = String(state.limit);

  const results = h("div", {class: "results", "aria-live": "polite"});
  const status = h("p", {class: "muted small", role: "status"});

  function remember() {
    const u = new URL(window.location.href);
    for (const key of ["name", "vendor", "category", "enabled"]) {
      if (state[key]) u.searchParams.set(key, state[key]);
      else u.searchParams.delete(key);
    }
    if (state.sorted) u.searchParams.set("sort", sortParam(state.sorted));
    else u.searchParams.delete("sort");
    if (state.limit !== 25) u.searchParams.set("limit", String(state.limit));
    else u.searchParams.delete("limit");
    window.history.replaceState(null, "", u.pathname + u.search);
  }

  function applyFilters() {
    state.name = nameInput.value.trim();
    state.vendor = vendorSelect.value;
    state.category = categorySelect.value;
    state.enabled = enabledSelect.value;
    state.limit = Number(limitSelect.value) || 25;
    state.cursors = [null];
    remember();
    load();
  }

  function draw() {
    const page = state.page;
    const rows = page.items.map((r) => ({...r, vendorName: names[r.vendor] || r.vendor}));
    const columns = [
      {label: "Name", sort: "name", cell: (r) => h("a", {href: `/integrations/${encodeURIComponent(r.id)}`}, r.name)},
      {label: "Vendor", sort: "vendor", cell: (r) => r.vendorName},
      {label: "Category", sort: "category", cell: (r) => categoryLabel(r.category)},
      {label: "Enabled", cell: (r) => h("span", {class: `badge ${r.enabled ? "good" : ""}`},
        r.enabled ? "enabled" : "disabled")},
      {label: "Health", sort: "tested", cell: health},
      {label: "Last sync", sort: "synced", cell: lastSync},
      {label: "Next sync", cell: nextSync},
      {label: "Webhook", cell: webhook},
    ];
    const filtered = state.name || state.vendor || state.category || state.enabled;
    const first = (state.cursors.length - 1) * state.limit;
    const pageNo = state.cursors.length;
    const lastPage = Math.max(1, Math.ceil(page.total / state.limit));
    const pager = h("nav", {class: "pager", "aria-label": "Pages"},
      button("Previous page", () => { state.cursors.pop(); load(); }, {disabled: state.cursors.length <= 1}),
      h("span", {}, `Page ${pageNo} of ${lastPage}`),
      button("Next page", () => { state.cursors.push(page.next_cursor); load(); }, {disabled: !page.next_cursor}));
    replace(status, page.items.length
      ? `Showing ${first + 1}–${first + page.items.length} of ${page.total} integration${page.total === 1 ? "" : "s"}`
        + (filtered ? " matching the filters" : "") + "."
      : "");
    replace(results,
      table(columns, rows, {
        caption: "Integrations",
        empty: filtered ? "No integration matches these filters." : "No integrations yet.",
        sorted: state.sorted,
        onSort: (key) => {
          const dir = state.sorted && state.sorted.key === key && state.sorted.dir === "asc" ? "desc" : "asc";
          state.sorted = {key, dir};
          state.cursors = [null];
          remember();
          load();
        },
      }),
      page.items.length ? h("p", {class: "muted small"}, state.sorted
        ? "Sorted across every page; never tested or synced counts as the earliest time."
        : "Newest first. Sort by a column header.") : null,
      page.total > state.limit || state.cursors.length > 1 ? pager : null);
  }

  // the latest request wins: a page asked for under older filters is aborted, and its answer, should it
  // arrive after the newer one, is not drawn
  let seq = 0;
  let controller = null;

  async function load() {
    seq += 1;
    const mine = seq;
    controller?.abort();
    controller = new AbortController();
    results.setAttribute("aria-busy", "true");
    try {
      const page = await api("GET", "/integrations", {signal: controller.signal, query: {
        limit: state.limit, cursor: state.cursors[state.cursors.length - 1], name: state.name,
        vendor: state.vendor, category: state.category, enabled: state.enabled,
        sort: state.sorted ? sortParam(state.sorted) : "",
      }});
      if (mine !== seq) return;
      state.page = page;
      draw();
    } catch (err) {
      if (mine !== seq || (err && err.name === "AbortError")) return;
      replace(status, "");
      replace(results, errorNotice(err));
    } finally {
      if (mine === seq) results.removeAttribute("aria-busy");
    }
  }

  let typing = null;
  nameInput.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(applyFilters, 400);
  });
  for (const select of [vendorSelect, categorySelect, enabledSelect, limitSelect]) {
    select.addEventListener("change", applyFilters);
  }

  const filters = h("form", {class: "filters", role: "search", "aria-label": "Filter integrations",
    onsubmit: (e) => { e.preventDefault(); clearTimeout(typing); applyFilters(); }},
    field("filter-name", "Name contains", nameInput),
    field("filter-vendor", "Vendor", vendorSelect),
    field("filter-category", "Category", categorySelect),
    field("filter-enabled", "Status", enabledSelect),
    field("filter-limit", "Per page", limitSelect),
    h("button", {type: "submit"}, "Filter"));

  replace(root,
    h("div", {class: "row list-head"},
      h("p", {class: "muted"}, "Connections to scanners, ticketing and CI/CD. No secret is ever shown here."),
      h("span", {class: "spacer"}),
      ctx.can.operate ? h("a", {class: "btn primary", href: "/integrations/new"}, "New integration") : null),
    filters, status, results,
    ctx.can.operate ? null : notice("info", "You have read access: creating and changing integrations needs the "
      + "operator role."));
  await load();
}
