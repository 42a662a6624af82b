// JSON Schema -> labelled form controls, and the controls' values back to JSON.
//
// A vendor type's connection and credentials schemas (GET /api/v1/connector-types) become fields labelled
// with each property's `title`, its `description` as help text, enums as selects, booleans as checkboxes,
// defaults filled and required ones marked. A secret property (`writeOnly` or `format: password`) becomes a
// password input that is never filled from anything: the API never returns a secret, and this module never
// writes one into the page.
import {field, h} from "./dom.js";

/** The label of a property: its schema title (the server spells it as people do: "Base URL"), else its name. */
export function titleOf(name, prop) {
  return (prop && prop.title) || name.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

/** Whether a schema property holds a secret (write-only). */
export function isSecret(prop) {
  return Boolean(prop && (prop.writeOnly || prop.format === "password"));
}

/** The property with a nullable `anyOf: [X, {type: null}]` folded into X; `nullable` says whether null was allowed. */
export function resolve(prop) {
  const out = {...prop};
  let nullable = false;
  if (Array.isArray(prop.anyOf)) {
    const variants = prop.anyOf.filter((v) => {
      if (v && v.type === "null") { nullable = true; return false; }
      return true;
    });
    delete out.anyOf;
    if (variants.length === 1) Object.assign(out, variants[0], {title: prop.title, description: prop.description});
  }
  if (Array.isArray(prop.type)) {
    nullable = nullable || prop.type.includes("null");
    out.type = prop.type.find((t) => t !== "null");
  }
  out.nullable = nullable;
  return out;
}

function multiline(name, prop) {
  return /PEM|certificate/i.test(prop.description || "") || /bundle|pem|certificate/i.test(name);
}

/**
 * Draw the properties of `schema` as fields.
 *   idPrefix: prefix of every control's id ("conn", "cred", "own").
 *   values: current values to fill in (never secrets: secret inputs are always left empty).
 *   stored: names of secret properties that hold a stored value (edit: "leave blank to keep").
 *   editing: whether this edits a saved object (blank secrets are kept, not required).
 *   only: names to draw, in this order (default: every property in schema order).
 * Returns {element, controls, read, setErrors, clearErrors, focusFirstError}.
 */
export function schemaForm(schema, {idPrefix, values = {}, stored = [], editing = false, only} = {}) {
  const properties = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const names = only || Object.keys(properties);
  const controls = {};
  const wrappers = [];
  for (const name of names) {
    const raw = properties[name];
    if (!raw) continue;
    const prop = resolve(raw);
    const secret = isSecret(raw);
    const id = `${idPrefix}-${name.replace(/[^A-Za-z0-9_-]/g, "-")}`;
    const label = titleOf(name, raw);
    const hasDefault = Object.prototype.hasOwnProperty.call(raw, "default");
    const current = Object.prototype.hasOwnProperty.call(values, name) ? values[name]
      : (!editing && hasDefault ? raw.default : undefined);
    let mustFill = required.has(name) && !prop.nullable;
    if (secret && editing && stored.includes(name)) mustFill = false;
    let control;
    let kind;
    if (prop.type === "boolean") {
      kind = "boolean";
      control = h("input", {type: "checkbox"});
      control.checked = current === undefined ? false : Boolean(current);
    } else if (Array.isArray(prop.enum)) {
      kind = "enum";
      control = h("select", {},
        mustFill ? null : h("option", {value: ""}, "(none)"),
        prop.enum.map((v) => h("option", {value: String(v)}, String(v))));
      control.value = current === undefined || current === null ? (mustFill ? String(prop.enum[0]) : "")
        : String(current);
    } else if (prop.type === "integer" || prop.type === "number") {
      kind = prop.type;
      control = h("input", {type: "number", step: prop.type === "integer" ? "1" : "any", inputmode: "decimal",
        min: prop.minimum, max: prop.maximum});
      control.value = current === undefined || current === null ? "" : String(current);
    } else if (prop.type === "array") {
      kind = "array";
      control = h("input", {type: "text", autocomplete: "off", spellcheck: "false"});
      control.value = Array.isArray(current) ? current.join(", ") : "";
    } else if (secret) {
      kind = "secret";
      // never pre-filled, never remembered by the browser's password manager
      control = h("input", {type: "password", autocomplete: "new-password", spellcheck: "false",
        autocapitalize: "off"});
    } else if (multiline(name, prop)) {
      kind = "string";
      control = h("textarea", {rows: 4, spellcheck: "false"});
      control.value = current === undefined || current === null ? "" : String(current);
    } else {
      kind = "string";
      control = h("input", {type: "text", autocomplete: "off", spellcheck: "false",
        inputmode: /url/i.test(name) ? "url" : null});
      control.value = current === undefined || current === null ? "" : String(current);
    }
    control.name = name;
    if (mustFill) {
      control.setAttribute("aria-required", "true");
      control.required = true;
    }
    let description = raw.description || "";
    if (kind === "array") description = `${description}${description ? " " : ""}(comma-separated)`;
    if (secret && editing) {
      description = stored.includes(name)
        ? `${description}${description ? " " : ""}A value is stored: leave blank to keep it.`
        : `${description}${description ? " " : ""}No value is stored.`;
    }
    const box = field(id, label, control, {description: description || null, required: mustFill});
    if (kind === "boolean") box.classList.add("check");
    const problem = h("div", {class: "field-error error hidden", id: `${id}-error`, role: "alert"});
    box.append(problem);
    wrappers.push(box);
    controls[name] = {name, control, kind, prop, raw, secret, label, box, problem, id, helpId: `${id}-help`,
      required: mustFill, initial: current};
  }

  /** Mark a control required (or not) after drawing: a changed target asks for the secrets again. */
  function setRequired(name, on) {
    const c = controls[name];
    if (!c) return;
    c.required = on;
    c.control.required = on;
    if (on) c.control.setAttribute("aria-required", "true");
    else c.control.removeAttribute("aria-required");
    const row = c.box.querySelector(".label-row");
    const mark = row && row.querySelector(".req");
    if (on && row && !mark) {
      row.append(h("span", {class: "req", title: "required"}, "*", h("span", {class: "visually-hidden"}, " required")));
    }
    if (!on && mark) mark.remove();
  }

  /** The value of one control as JSON, `undefined` when empty (left out), or {error}. */
  function valueOf(c) {
    const el = c.control;
    if (c.kind === "boolean") return {value: el.checked};
    const text = el.value.trim();
    if (text === "") return {value: undefined};
    if (c.kind === "integer" || c.kind === "number") {
      const n = Number(text);
      if (!Number.isFinite(n) || (c.kind === "integer" && !Number.isInteger(n))) {
        return {error: c.kind === "integer" ? "must be a whole number" : "must be a number"};
      }
      return {value: n};
    }
    if (c.kind === "array") {
      const itemType = (c.prop.items && c.prop.items.type) || "string";
      const items = text.split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
      if (itemType === "integer" || itemType === "number") {
        const nums = items.map(Number);
        if (nums.some((n) => !Number.isFinite(n) || (itemType === "integer" && !Number.isInteger(n)))) {
          return {error: "must be numbers separated by commas"};
        }
        return {value: nums};
      }
      return {value: items};
    }
    if (c.kind === "secret") return {value: el.value.trim() === "" ? undefined : el.value};
    return {value: text};
  }

  /** Every control's value: {values: {name: json}, errors: {name: reason}}; empty controls are left out. */
  function read() {
    const out = {};
    const errors = {};
    for (const c of Object.values(controls)) {
      const {value, error} = valueOf(c);
      if (error) errors[c.name] = error;
      else if (value !== undefined) out[c.name] = value;
      else if (c.required) errors[c.name] = c.secret && editing ? "must be supplied again" : "is required";
    }
    return {values: out, errors};
  }

  function clearErrors() {
    for (const c of Object.values(controls)) {
      c.problem.textContent = "";
      c.problem.classList.add("hidden");
      c.control.removeAttribute("aria-invalid");
      const described = [c.box.querySelector(".help") ? c.helpId : null].filter(Boolean).join(" ");
      if (described) c.control.setAttribute("aria-describedby", described);
      else c.control.removeAttribute("aria-describedby");
    }
  }

  /** Show a problem next to a control (the reason only: a typed value is never echoed). */
  function setError(name, reason) {
    const c = controls[name];
    if (!c) return false;
    c.problem.textContent = `${c.label} ${reason}`;
    c.problem.classList.remove("hidden");
    c.control.setAttribute("aria-invalid", "true");
    const described = [c.box.querySelector(".help") ? c.helpId : null, `${c.id}-error`].filter(Boolean).join(" ");
    c.control.setAttribute("aria-describedby", described);
    return true;
  }

  function focusFirstError() {
    const bad = Object.values(controls).find((c) => c.control.getAttribute("aria-invalid") === "true");
    if (bad) bad.control.focus();
  }

  return {element: h("div", {class: "schema-fields"}, wrappers), controls, read, setError, clearErrors,
    setRequired, focusFirstError};
}
