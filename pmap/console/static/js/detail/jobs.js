// Jobs of the detail page: follow one with live progress (polled, never faster than every 2 s), draw its
// summary or its error; every value from the API goes in as text.
import {api, poll} from "../api.js";
import {button, errorNotice, h, notice, replace, timeAgo} from "../dom.js";

export const ENDED = new Set(["succeeded", "failed"]);

const LABELS = {
  parsed: "Parsed", kept: "Kept", filtered_out: "Filtered out", created: "Created", updated: "Updated",
  resolved: "Resolved", reopened: "Reopened", suppressed: "Suppressed", created_resolved: "Created resolved",
  unknown_severity: "Unknown severity", merged: "Merged", covered: "Resources covered", rules_applied: "Rules applied",
  rules_undefined: "Rule evaluations undefined", format: "Format", scope: "Scope", full: "Full report",
  resolve: "Resolve", import_id: "Import",
};
const SKIP = new Set(["duplicates", "warnings"]);

function label(key) {
  return LABELS[key] || key.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

function scalar(value) {
  if (value === true) return "yes";
  if (value === false) return "no";
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** A summary (an import summary, a sync result, whatever a job's result holds) as a list of its values. */
export function summaryList(result, {title = "Summary"} = {}) {
  if (!result || typeof result !== "object") return h("p", {class: "muted"}, "No summary.");
  const rows = [];
  for (const [key, value] of Object.entries(result)) {
    if (SKIP.has(key)) continue;
    if (value && typeof value === "object" && !Array.isArray(value)) {
      const inner = Object.entries(value);
      if (!inner.length) continue;
      rows.push(h("dt", {}, label(key)), h("dd", {}, inner.map(([k, v]) => `${k}: ${scalar(v)}`).join(", ")));
    } else {
      rows.push(h("dt", {}, label(key)), h("dd", {}, scalar(value)));
    }
  }
  const warnings = Array.isArray(result.warnings) ? result.warnings : [];
  return h("div", {class: "summary", role: "group", "aria-label": title},
    h("h3", {}, title),
    h("dl", {class: "props"}, rows),
    warnings.length ? notice("warning", h("strong", {}, "Warnings"), h("ul", {}, warnings.map((w) => h("li", {}, w))))
      : null);
}

/** A job's error ({code, message, step?, hint?}) as an error notice, drawn as text. */
export function jobError(error) {
  return errorNotice({body: {error: error || {}}, message: "the job failed"});
}

/** The progress of a running job: phase, findings so far and, when the size is known, a bar. */
export function progressView(job) {
  const p = job.progress || {};
  const parts = [h("span", {class: `badge ${job.status === "failed" ? "bad" : job.status === "succeeded" ? "good"
    : "warn"}`}, job.status)];
  if (p.phase) parts.push(" ", h("span", {}, `phase: ${p.phase}`));
  if (typeof p.findings === "number") parts.push(" ", h("span", {}, `findings: ${p.findings}`));
  let bar = null;
  if (!ENDED.has(job.status) && typeof p.bytes_total === "number" && p.bytes_total > 0) {
    const done = Math.min(1, (p.bytes_read || 0) / p.bytes_total);
    bar = h("progress", {max: "1", value: String(done), "aria-label": `Job ${job.kind} progress`});
  }
  return h("div", {class: "job-progress"}, h("div", {}, parts), bar);
}

/**
 * Follow `job` into `box`: its progress while it runs (polled every 2 s), then its summary or error.
 * onDone(job) is called once it ended. Returns the poll's stop function.
 */
export function followJob(job, box, {title = "Job", canCancel = false, onDone} = {}) {
  let current = job;
  const draw = () => {
    const ended = ENDED.has(current.status);
    const cancel = canCancel && !ended ? button("Cancel job", async () => {
      try {
        current = await api("POST", `/jobs/${current.id}/cancel`);
        draw();
      } catch (err) {
        box.append(errorNotice(err));
      }
    }) : null;
    replace(box, h("div", {class: "job", "data-job-id": current.id, "data-status": current.status},
      h("p", {}, h("strong", {}, `${title}: `), `${current.kind} `, h("code", {}, current.id)),
      progressView(current),
      cancel,
      current.status === "succeeded" ? [notice("ok", `${title} finished.`), summaryList(current.result,
        {title: `${title} summary`})] : null,
      current.status === "failed" ? jobError(current.error) : null));
  };
  draw();
  if (ENDED.has(current.status)) {
    if (onDone) onDone(current);
    return () => {};
  }
  return poll(async () => {
    current = await api("GET", `/jobs/${current.id}`);
    draw();
    if (ENDED.has(current.status)) {
      if (onDone) onDone(current);
      return true;
    }
    return false;
  }, 2000);
}

/** A short one-line summary of a job's result for tables. */
export function shortSummary(result) {
  if (!result || typeof result !== "object") return "";
  const keys = ["parsed", "created", "updated", "resolved", "reopened", "suppressed"];
  return keys.filter((k) => typeof result[k] === "number").map((k) => `${label(k).toLowerCase()} ${result[k]}`)
    .join(", ");
}

/** When something happened: its age, the exact time on hover. */
export function at(iso) {
  return timeAgo(iso);
}
