// Building the DOM without ever parsing strings as HTML: every text goes in as a text node, so a vendor error,
// an integration name or a finding title holding markup shows as text. No innerHTML anywhere in the console.

/** An element: h("a", {href: "/x", class: "btn", onclick: fn}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** An SVG element (charts). */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A UTC time as the reader's local time, or "never". */
export function when(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

/** How long ago (or from now) a time is: "5 min ago", "in 2 h". */
export function ago(iso) {
  if (!iso) return "never";
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  const abs = Math.abs(seconds);
  const [n, unit] = abs < 60 ? [abs, "s"] : abs < 3600 ? [abs / 60, "min"] : abs < 86400 ? [abs / 3600, "h"]
    : [abs / 86400, "d"];
  const text = `${Math.round(n)} ${unit}`;
  return seconds >= 0 ? `${text} ago` : `in ${text}`;
}

/** A <time> element showing the age and, on hover, the exact time. */
export function timeAgo(iso) {
  return iso ? h("time", {datetime: iso, title: when(iso)}, ago(iso)) : h("span", {class: "muted"}, "never");
}

/** A status message in a live region: kind is "ok", "error", "warning" or "info". */
export function notice(kind, ...children) {
  return h("div", {class: `notice ${kind}`, role: kind === "error" ? "alert" : "status"}, ...children);
}

/** An error from the API drawn as text: its message, the failed step and hint when there are, field problems. */
export function errorNotice(err) {
  const body = (err && err.body && err.body.error) || {};
  const message = body.message || (err && err.message) || "the request failed";
  const parts = [h("strong", {}, message)];
  if (body.step) parts.push(h("div", {class: "step"}, "Failed step: ", h("code", {}, body.step)));
  if (body.hint) parts.push(h("div", {class: "hint"}, "Hint: ", body.hint));
  if (Array.isArray(body.fields) && body.fields.length) {
    parts.push(h("ul", {class: "fields"}, body.fields.map((f) => h("li", {}, h("code", {}, f.field), " ", f.reason))));
  }
  if (body.correlation_id) parts.push(h("div", {class: "muted small"}, "Correlation id: ", body.correlation_id));
  return notice("error", ...parts);
}

/** A table from column definitions [{label, cell: (row) => node|string, sort?: key}] and rows. */
export function table(columns, rows, {caption, empty = "Nothing here yet.", onSort, sorted} = {}) {
  if (!rows.length) return h("p", {class: "muted empty"}, empty);
  const head = h("tr", {}, columns.map((c) => {
    if (!c.sort || !onSort) return h("th", {scope: "col"}, c.label);
    const active = sorted && sorted.key === c.sort;
    const dir = active ? sorted.dir : null;
    return h("th", {scope: "col", "aria-sort": active ? (dir === "asc" ? "ascending" : "descending") : "none"},
      h("button", {type: "button", class: "link sort", onclick: () => onSort(c.sort)}, c.label,
        active ? (dir === "asc" ? " ▲" : " ▼") : ""));
  }));
  return h("div", {class: "table-wrap"}, h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, head),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c) => h("td", {}, c.cell(row))))))));
}

/** A labelled form control wrapper: label text, control, optional description. */
export function field(id, label, control, {description, required} = {}) {
  control.id = id;
  const describedBy = description ? `${id}-help` : null;
  if (describedBy) control.setAttribute("aria-describedby", describedBy);
  return h("div", {class: "field"},
    // the mark stays outside the label, so the control's accessible name is exactly its title
    h("div", {class: "label-row"}, h("label", {for: id}, label),
      required ? h("span", {class: "req", title: "required"}, "*", h("span", {class: "visually-hidden"}, " required"))
        : null),
    control,
    description ? h("div", {class: "help", id: describedBy}, description) : null);
}

/** A button: h("button") with type=button unless given. */
export function button(label, onclick, attrs = {}) {
  return h("button", {type: "button", ...attrs, onclick}, label);
}

/** Severity names in order, most severe first. */
export const SEVERITIES = ["critical", "high", "medium", "low", "info"];

/** A severity badge. */
export function severityBadge(severity) {
  return h("span", {class: `sev sev-${SEVERITIES.includes(severity) ? severity : "unknown"}`}, severity || "unknown");
}
