// The catalog: the nine categories and every vendor type this build knows (GET /connector-types), what each
// connects to, its operations, report formats, webhook scheme and documentation, with an in-page filter.
import {api} from "../api.js";
import {errorNotice, field, h, replace} from "../dom.js";

/** The nine categories, in the order people look for them, with what each covers. */
const CATEGORIES = [
  ["vm", "Vulnerability management", "Network and host vulnerability scanners."],
  ["dast", "Dynamic application security testing (DAST)", "Scanners that test running web applications."],
  ["sast", "Static application security testing (SAST)", "Source code and secret scanners."],
  ["sca", "Software composition analysis (SCA)", "Dependency, container and SBOM scanners."],
  ["network_discovery", "Network discovery", "Asset inventories and port scanners."],
  ["mobile", "Mobile application security", "Scanners of mobile applications."],
  ["itsm", "IT service management", "Service desks that receive findings as requests."],
  ["ticketing", "Ticketing", "Issue trackers that receive findings as tickets."],
  ["cicd", "CI/CD", "Pipelines whose security reports are read."],
];

const OPERATIONS = {
  test_connection: "Test connection",
  check_permissions: "Permissions check",
  sync_findings: "Sync findings",
  fetch_findings: "Fetch findings",
  launch_scan: "Launch scan",
  scan_status: "Scan status",
  create_ticket: "Create ticket",
  sync_status: "Sync ticket status",
  register_webhook: "Register webhook",
  fetch_pipeline_reports: "Fetch pipeline reports",
};

function list(values, empty, label = (v) => v) {
  if (!values || !values.length) return h("span", {class: "muted"}, empty);
  return h("ul", {class: "chips"}, values.map((v) => h("li", {}, h("code", {}, label(v)))));
}

function connectsTo(type) {
  if (type.file_only) return h("span", {}, "No connection: reports are imported as files.");
  if (type.default_base_url) return h("span", {}, "Its API, by default at ", h("code", {}, type.default_base_url));
  return h("span", {}, "Its API at the base URL of your own server.");
}

function vendorCard(type, ctx) {
  const name = ctx.can.operate
    ? h("a", {href: `/integrations/new?vendor=${encodeURIComponent(type.vendor)}`}, type.display_name)
    : type.display_name;
  const docs = type.docs_url && /^https?:\/\//i.test(type.docs_url)
    ? h("a", {href: type.docs_url, rel: "noopener noreferrer", target: "_blank", class: "docs-link"},
      `${type.display_name} documentation`, h("span", {class: "visually-hidden"}, " (opens in a new tab)"))
    : h("span", {class: "muted"}, "none");
  return h("article", {class: "card vendor", dataset: {vendor: type.vendor}},
    h("h3", {}, name, " ", h("code", {class: "muted small"}, type.vendor)),
    type.file_only ? h("span", {class: "badge"}, "file import only") : null,
    type.notes ? h("p", {class: "notes"}, type.notes) : null,
    h("dl", {class: "props"},
      h("dt", {}, "Connects to"), h("dd", {}, connectsTo(type)),
      h("dt", {}, "Operations"), h("dd", {}, list(type.operations, "none (file import only)",
        (op) => OPERATIONS[op] || op)),
      h("dt", {}, "Report formats"), h("dd", {}, list(type.report_formats, "none")),
      h("dt", {}, "Webhook scheme"), h("dd", {}, type.webhook_scheme ? h("code", {}, type.webhook_scheme)
        : h("span", {class: "muted"}, "no webhooks")),
      h("dt", {}, "Documentation"), h("dd", {}, docs)));
}

function haystack(type) {
  return [type.vendor, type.display_name, type.category, type.notes || "", type.webhook_scheme || "",
    ...(type.operations || []), ...(type.operations || []).map((op) => OPERATIONS[op] || ""),
    ...(type.report_formats || [])].join(" ").toLowerCase();
}

export async function render(root, ctx) {
  let types;
  try {
    types = await api("GET", "/connector-types");
  } catch (err) {
    replace(root, errorNotice(err));
    return;
  }
  const known = new Set(CATEGORIES.map(([key]) => key));
  const categories = [...CATEGORIES];
  for (const t of types) {  // a category a newer build added still shows
    if (!known.has(t.category)) { known.add(t.category); categories.push([t.category, t.category, ""]); }
  }
  const search = h("input", {type: "search", autocomplete: "off", placeholder: "Nessus, sarif, ticketing…"});
  const status = h("p", {class: "muted", role: "status"});
  const none = h("p", {class: "muted hidden"}, "No vendor type matches the filter.");
  const sections = categories.map(([key, label, about]) => {
    const members = types.filter((t) => t.category === key)
      .map((t) => ({type: t, text: haystack(t), card: vendorCard(t, ctx)}));
    const count = h("span", {class: "muted small"});
    const section = h("section", {class: "category", id: `category-${key}`, "aria-labelledby": `heading-${key}`},
      h("h2", {id: `heading-${key}`}, label, " ", count),
      about ? h("p", {class: "muted"}, about) : null,
      members.length ? h("div", {class: "grid"}, members.map((m) => m.card))
        : h("p", {class: "muted"}, "No vendor type in this build."));
    return {key, section, members, count};
  });
  const apply = () => {
    const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const s of sections) {
      let here = 0;
      for (const m of s.members) {
        const match = words.every((w) => m.text.includes(w));
        m.card.classList.toggle("hidden", !match);
        if (match) here += 1;
      }
      shown += here;
      s.count.textContent = `(${here})`;
      s.section.classList.toggle("hidden", words.length > 0 && here === 0);
    }
    status.textContent = `${shown} of ${types.length} vendor types in ${categories.length} categories`;
    none.classList.toggle("hidden", shown > 0);
  };
  search.addEventListener("input", apply);
  const jump = h("nav", {"aria-label": "Categories", class: "jump"},
    h("ul", {class: "chips"}, categories.map(([key, label]) => h("li", {}, h("a", {href: `#category-${key}`}, label)))));
  replace(root,
    h("p", {}, "Every vendor type this PMAP build can connect to, grouped by category.",
      ctx.can.operate ? " Choose a vendor's name to create an integration of it." : ""),
    h("div", {class: "filters"}, field("catalog-filter", "Filter vendor types", search,
      {description: "Matches names, keys, categories, operations, report formats and notes."})),
    status, jump, none, sections.map((s) => s.section));
  apply();
}
