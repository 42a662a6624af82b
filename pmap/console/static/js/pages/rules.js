// Severity rules in evaluation order. Operators create, edit (with live validation: the compile error shown at
// its position, the rule's cost), preview a rule's effect on current findings, delete and reorder; viewers read.
import {api, ApiError} from "../api.js";
import {button, errorNotice, field, h, notice, replace, SEVERITIES, severityBadge, table} from "../dom.js";

const ACTIONS = [["set_severity", "Set severity"], ["suppress", "Suppress"], ["tag", "Tag"]];
const ACTION_NAMES = Object.fromEntries(ACTIONS);
const VALIDATE_DELAY = 400;
const CHANGE_NAMES = {severity: "Severity changes", suppressed: "Suppression changes", tags: "Tag changes"};
const FIELDS_HELP = "Fields: title, description, severity, severity_rank, vendor_severity, rule_id, cve_ids, cwe_ids, " +
  "other_ids, cvss_score, cvss_vector, host, ip, port, protocol, url, parameter, repository, file_path, line, " +
  "package_name, package_version, fixed_version, vendor, integration_id, format, tags. " +
  "Example: host != null && host.endsWith(\".lab.example\")";

/** The position ("at position N") an error names, from its fields or its message. */
export function errorPosition(err) {
  const body = (err && err.body && err.body.error) || {};
  const texts = [...(body.fields || []).map((f) => String(f.reason || "")), String(body.message || "")];
  for (const text of texts) {
    const m = /at position (\d+)/.exec(text);
    if (m) return Number(m[1]);
  }
  return null;
}

/** The condition's line holding `position`, with a caret under it, as text: [line, caretLine, lineNo, col]. */
export function caretAt(condition, position) {
  const pos = Math.max(0, Math.min(position, condition.length));
  const start = condition.lastIndexOf("\n", pos - 1) + 1;
  let end = condition.indexOf("\n", pos);
  if (end < 0) end = condition.length;
  const line = condition.slice(start, end);
  const col = pos - start;
  // keep tabs as tabs so the caret lines up under the same character
  const pad = line.slice(0, col).replace(/[^\t]/g, " ");
  const lineNo = condition.slice(0, start).split("\n").length;
  return [line, `${pad}^`, lineNo, col + 1];
}

function compileError(err, condition) {
  const position = errorPosition(err);
  const parts = [errorNotice(err)];
  if (position !== null && condition) {
    const [line, caret, lineNo, col] = caretAt(condition, position);
    parts.push(h("figure", {class: "rule-caret"},
      h("figcaption", {class: "small"}, `Condition, line ${lineNo}, column ${col} (position ${position}):`),
      h("pre", {class: "rule-error", "aria-label": `Error at position ${position}`},
        `${line}\n${caret}`)));
  }
  return h("div", {class: "rule-check", dataset: {position: position === null ? "" : String(position)}}, parts);
}

/** What the rules decide for a finding ({severity, suppressed, tags}) as badges and text. */
function effect(e) {
  if (e === null || e === undefined) return "";
  if (typeof e !== "object") return String(e);
  return h("span", {class: "rule-effect"}, severityBadge(e.severity), e.suppressed ? " suppressed" : "",
    (e.tags || []).length ? ` tags: ${e.tags.join(", ")}` : "");
}

function micro(n) {
  return n === null || n === undefined ? "not measured" : `${Number(n).toFixed(2)} µs`;
}

function costText(cost) {
  const sample = cost.sample.source === "findings" ? `${cost.sample.findings} recent findings`
    : `a synthetic sample of ${cost.sample.findings} findings`;
  return [`Cost: ${micro(cost.rule_us_per_finding)} per finding alone`,
    `adds ${micro(cost.rule_adds_us_per_finding)} to the enabled rules`,
    `the rule set: ${micro(cost.rule_set_us_per_finding)} per finding`,
    `compiled size ${cost.size} (measured on ${sample})`].join("; ") + ".";
}

export async function render(root, ctx) {
  const listSection = h("section", {"aria-labelledby": "rules-heading"},
    h("h2", {id: "rules-heading"}, "Rules, in evaluation order"),
    h("p", {class: "muted small"}, "Each import normalizes the vendor's severity, drops what is below the ",
      "integration's threshold, then applies these rules in order: the last rule to set a severity wins its finding; ",
      "suppressing rules and tags add up."));
  const listBody = h("div", {});
  const status = h("div", {"aria-live": "polite"});
  listSection.append(status, listBody);
  const editor = h("section", {"aria-labelledby": "editor-heading", class: "hidden"});
  const parts = [listSection];
  if (ctx.can.operate) {
    parts.unshift(h("div", {class: "row"}, button("New rule", () => openEditor(null), {class: "primary"})));
    parts.push(editor);
  }
  const costSection = h("section", {"aria-labelledby": "cost-heading"}, h("h2", {id: "cost-heading"}, "Cost"));
  const costBody = h("div", {});
  costSection.append(costBody);
  parts.push(costSection);
  replace(root, ...parts);

  let rules = [];

  async function loadRules() {
    try {
      rules = (await api("GET", "/rules")).items;
    } catch (err) {
      replace(listBody, errorNotice(err));
      return;
    }
    drawList();
    loadCost();
  }

  async function loadCost() {
    try {
      const cost = await api("GET", "/rules/cost");
      replace(costBody, h("p", {},
        `${cost.enabled} of ${cost.rules} rules enabled; they cost ${micro(cost.us_per_finding)} per imported finding `,
        `(${cost.seconds_per_100k_findings} s per 100,000 findings), compiled size ${cost.size} of `,
        `${cost.limits.max_org_size} allowed.`, cost.partial ? " Some rules were not measured in time." : ""));
    } catch (err) {
      replace(costBody, errorNotice(err));
    }
  }

  function drawList() {
    const columns = [
      {label: "#", cell: (r) => String(rules.indexOf(r) + 1)},
      {label: "Name", cell: (r) => h("span", {id: `rule-${r.id}`}, r.name)},
      {label: "Condition", cell: (r) => h("code", {class: "rule-condition"}, r.condition)},
      {label: "Action", cell: (r) => ACTION_NAMES[r.action] || r.action},
      {label: "Value", cell: (r) => (r.action === "set_severity" ? severityBadge(r.value) : r.value || "")},
      {label: "Enabled", cell: (r) => h("span", {class: `badge ${r.enabled ? "good" : ""}`}, r.enabled ? "yes" : "no")},
    ];
    if (ctx.can.operate) {
      columns.push({label: "Change", cell: (r) => {
        const i = rules.indexOf(r);
        const confirmBox = h("div", {class: "row hidden"});
        return h("div", {class: "rule-actions"}, h("div", {class: "row"},
          button("Edit", () => openEditor(r), {"aria-label": `Edit ${r.name}`}),
          button("Move up", () => move(i, -1), {"aria-label": `Move up ${r.name}`, disabled: i === 0}),
          button("Move down", () => move(i, 1), {"aria-label": `Move down ${r.name}`, disabled: i === rules.length - 1}),
          button("Delete", () => {
            replace(confirmBox, h("span", {}, `Delete “${r.name}”?`),
              button("Confirm delete", () => remove(r), {class: "danger", "aria-label": `Confirm delete ${r.name}`}),
              button("Cancel", () => confirmBox.classList.add("hidden")));
            confirmBox.classList.remove("hidden");
            confirmBox.querySelector("button")?.focus();
          }, {class: "danger", "aria-label": `Delete ${r.name}`})), confirmBox);
      }});
    }
    replace(listBody, table(columns, rules, {caption: `${rules.length} rule${rules.length === 1 ? "" : "s"}`,
      empty: ctx.can.operate ? "No rules yet: “New rule” adds one." : "No rules yet."}));
  }

  async function move(index, delta) {
    const target = index + delta;
    if (target < 0 || target >= rules.length) return;
    const order = rules.slice();
    [order[index], order[target]] = [order[target], order[index]];
    replace(status, notice("info", "Saving the new order…"));
    try {
      // positions become the list's indices; only rules whose position changes are patched
      for (const [i, r] of order.entries()) {
        if (r.position !== i) await api("PATCH", `/rules/${r.id}`, {json: {position: i}});
      }
      replace(status, notice("ok", `Moved “${rules[index].name}” ${delta < 0 ? "up" : "down"}.`));
    } catch (err) {
      replace(status, errorNotice(err));
    }
    await loadRules();
    // keep the keyboard where it was: on the moved rule's button, or its other one at an end of the list
    const moved = order[target];
    const label = (dir) => `Move ${dir} ${moved.name}`;
    const buttons = [...listBody.querySelectorAll("button")];
    const same = buttons.find((b) => b.getAttribute("aria-label") === label(delta < 0 ? "up" : "down"));
    const other = buttons.find((b) => b.getAttribute("aria-label") === label(delta < 0 ? "down" : "up"));
    (same && !same.disabled ? same : other)?.focus();
  }

  async function remove(rule) {
    try {
      await api("DELETE", `/rules/${rule.id}`);
      replace(status, notice("ok", `Deleted “${rule.name}”.`));
    } catch (err) {
      replace(status, errorNotice(err));
    }
    await loadRules();
  }

  function openEditor(rule) {
    drawEditor(editor, rule, async (saved) => {
      replace(status, notice("ok", `Saved “${saved.name}”. `, costText(saved.cost)));
      editor.classList.add("hidden");
      replace(editor);
      await loadRules();
    }, () => {
      editor.classList.add("hidden");
      replace(editor);
    });
    editor.classList.remove("hidden");
    editor.querySelector("input, textarea")?.focus();
  }

  await loadRules();
  if (window.location.hash.startsWith("#rule-")) {
    document.getElementById(window.location.hash.slice(1))?.scrollIntoView();
  }
}

function drawEditor(section, rule, onSaved, onCancel) {
  const editing = rule !== null;
  const name = h("input", {type: "text", maxlength: 200, value: editing ? rule.name : "", required: true});
  const condition = h("textarea", {rows: 4, maxlength: 2000, spellcheck: "false", required: true, class: "mono"},
    editing ? rule.condition : "");
  const action = h("select", {}, ACTIONS.map(([v, label]) => h("option", {value: v,
    selected: (editing ? rule.action : "set_severity") === v}, label)));
  const enabled = h("input", {type: "checkbox", id: "rule-enabled", checked: editing ? rule.enabled : true});
  const valueSlot = h("div", {});
  let value = null;
  const drawValue = (current) => {
    if (action.value === "set_severity") {
      value = h("select", {}, SEVERITIES.map((s) => h("option", {value: s, selected: current === s}, s)));
      replace(valueSlot, field("rule-value", "Value", value, {description: "The severity the rule sets.",
        required: true}));
    } else if (action.value === "tag") {
      value = h("input", {type: "text", maxlength: 64, value: current || ""});
      replace(valueSlot, field("rule-value", "Value", value, {description: "The tag to add.", required: true}));
    } else {
      value = null;
      replace(valueSlot, h("p", {class: "muted small"}, "Suppress takes no value."));
    }
    value?.addEventListener("input", schedule);
    value?.addEventListener("change", schedule);
  };
  drawValue(editing ? rule.value : "high");
  const check = h("div", {class: "rule-live", "aria-live": "polite"});
  const previewBox = h("div", {"aria-live": "polite"});
  const result = h("div", {});
  const save = h("button", {type: "submit", class: "primary"}, editing ? "Save" : "Create rule");
  const form = h("form", {class: "card", "aria-labelledby": "editor-heading"},
    field("rule-name", "Name", name, {required: true}),
    field("rule-condition", "Condition", condition, {required: true, description: FIELDS_HELP}),
    field("rule-action", "Action", action),
    valueSlot,
    h("div", {class: "field check"}, enabled, h("label", {for: "rule-enabled"}, "Enabled")),
    h("h3", {}, "Validation"), check,
    h("div", {class: "row"}, button("Preview", () => preview()), save, button("Cancel", onCancel)),
    previewBox, result);

  function body() {
    const out = {name: name.value.trim(), condition: condition.value, action: action.value,
      enabled: enabled.checked};
    if (value) out.value = value.value.trim();
    else out.value = null;
    return out;
  }

  let timer = null;
  let seq = 0;
  let controller = null;
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(validate, VALIDATE_DELAY);
  }
  async function validate() {
    const b = body();
    if (!b.condition.trim()) {
      replace(check, h("p", {class: "muted"}, "Type a condition to check it."));
      return;
    }
    seq += 1;
    const mine = seq;
    controller?.abort();
    controller = new AbortController();
    replace(check, h("p", {class: "muted"}, "Checking…"));
    // the name does not change whether a condition compiles: a blank one is checked as "unnamed"
    const json = {...b, name: b.name || "unnamed"};
    try {
      const checked = await api("POST", "/rules/validate", {json, signal: controller.signal});
      if (mine !== seq) return;
      replace(check, notice("ok", h("strong", {}, "The rule compiles. "), costText(checked.cost)));
    } catch (err) {
      if (mine !== seq || (err && err.name === "AbortError")) return;
      replace(check, compileError(err, b.condition));
    }
  }

  async function preview() {
    const b = body();
    const json = {...b};
    if (editing) json.rule_id = rule.id;
    replace(previewBox, notice("info", "Previewing…"));
    let out;
    try {
      out = await api("POST", "/rules/preview", {json});
    } catch (err) {
      if (err instanceof ApiError && [404, 405].includes(err.status)) {
        replace(previewBox, notice("info", "Preview is not available from this server (POST /api/v1/rules/preview)."));
      } else {
        replace(previewBox, compileError(err, b.condition));
      }
      return;
    }
    const changes = Object.entries(out.by_change || {});
    replace(previewBox, h("div", {class: "card rule-preview"},
      h("h3", {}, "Preview"),
      h("p", {}, h("strong", {}, `This rule would change ${out.changed} of ${out.examined} open findings.`),
        out.truncated ? " (Examined a bounded sample; there may be more.)" : ""),
      changes.length ? h("ul", {}, changes.map(([k, n]) => h("li", {}, `${CHANGE_NAMES[k] || k}: ${n}`))) : null,
      table([
        {label: "Title", cell: (s) => h("a", {href: `/findings/${encodeURIComponent(s.finding_id)}`}, s.title)},
        {label: "From", cell: (s) => effect(s.from)},
        {label: "To", cell: (s) => effect(s.to)},
      ], out.samples || [], {caption: "Sample of the findings it would change", empty: "No finding would change."})));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const b = body();
    save.disabled = true;
    replace(result);
    try {
      const saved = editing ? await api("PATCH", `/rules/${rule.id}`, {json: b}) : await api("POST", "/rules", {json: b});
      await onSaved(saved);
    } catch (err) {
      replace(result, compileError(err, b.condition));
    } finally {
      save.disabled = false;
    }
  });
  for (const el of [name, condition]) el.addEventListener("input", schedule);
  action.addEventListener("change", () => {
    drawValue(null);
    schedule();
  });
  enabled.addEventListener("change", schedule);

  replace(section, h("h2", {id: "editor-heading"}, editing ? `Edit rule “${rule.name}”` : "New rule"), form);
  if (editing) validate();
  else replace(check, h("p", {class: "muted"}, "Type a condition to check it."));
}
