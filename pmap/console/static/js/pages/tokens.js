// API tokens (admins): the organization's tokens (never their values), create one (its value shown once, gone
// from the page on "Done" or when the page is left) and revoke one after a confirmation.
import {api} from "../api.js";
import {button, errorNotice, field, h, notice, replace, table, timeAgo, when} from "../dom.js";

const ROLES = [["viewer", "viewer: read only"], ["operator", "operator: change and test"],
  ["admin", "admin: also reveal, tokens and audit"]];
const MAX_DAYS = 3650;

function status(token) {
  if (token.revoked_at) return h("span", {class: "badge bad"}, "revoked");
  if (token.expires_at && new Date(token.expires_at).getTime() <= Date.now()) {
    return h("span", {class: "badge warn"}, "expired");
  }
  return h("span", {class: "badge good"}, "active");
}

function active(token) {
  return !token.revoked_at && !(token.expires_at && new Date(token.expires_at).getTime() <= Date.now());
}

/** Copy a read-only field's value: the Clipboard API where allowed, else the selection. */
async function copy(input, said) {
  try {
    await navigator.clipboard.writeText(input.value);
    said.textContent = "Copied to the clipboard.";
  } catch (err) {
    input.focus();
    input.select();
    said.textContent = "Selected: press Ctrl+C (or ⌘C) to copy.";
  }
}

export async function render(root, ctx) {
  const created = h("div", {id: "created-token"});
  const listing = h("section", {"aria-labelledby": "tokens-heading"},
    h("h2", {id: "tokens-heading"}, "Tokens"), h("div", {class: "token-list"}));
  const list = listing.querySelector(".token-list");
  const message = h("div", {class: "token-message", "aria-live": "polite"});

  // the shown-once value: dropped from the DOM on "Done" and whenever the page is left (back/forward cache too)
  const forget = () => replace(created);
  window.addEventListener("pagehide", forget);

  const name = h("input", {type: "text", autocomplete: "off", required: true, maxlength: "200"});
  const role = h("select", {}, ROLES.map(([value, label]) => h("option", {value, selected: value === "viewer"},
    label)));
  const days = h("input", {type: "number", min: "1", max: String(MAX_DAYS), step: "1", inputmode: "numeric"});
  const submit = h("button", {type: "submit", class: "primary"}, "Create token");
  const formProblem = h("div", {"aria-live": "polite"});
  const form = h("form", {class: "card token-form", "aria-labelledby": "create-heading", novalidate: true},
    h("h2", {id: "create-heading"}, "Create token"),
    h("div", {class: "grid"},
      field("token-name", "Name", name, {required: true, description: "Who or what uses it, e.g. \"CI pipeline\"."}),
      field("token-role", "Role", role),
      field("token-days", "Expires in days", days,
        {description: `1 to ${MAX_DAYS}; leave blank for a token that never expires.`})),
    formProblem, submit);

  function showCreated(token) {
    const value = h("input", {type: "text", readonly: true, autocomplete: "off", spellcheck: "false",
      class: "token-value"});
    value.value = token.token;  // a property, never an attribute: it is not in the page's markup
    const said = h("span", {class: "muted small copy-status", role: "status"});
    replace(created, h("section", {class: "card shown-once", "aria-labelledby": "created-heading"},
      h("h2", {id: "created-heading"}, `Token "${token.name}" created (${token.role})`),
      notice("warning", h("strong", {}, "Copy this token now: it will not be shown again."),
        " PMAP keeps only its hash; if it is lost, revoke it and create another."),
      field("new-token-value", "New token", value),
      h("div", {class: "row"},
        button("Copy", () => copy(value, said)),
        button("Done", () => { forget(); name.focus(); }, {class: "primary"}),
        said)));
    value.focus();
    value.select();
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    replace(formProblem);
    const body = {name: name.value.trim(), role: role.value};
    if (days.value.trim()) {
      const n = Number(days.value);
      if (!Number.isInteger(n) || n < 1 || n > MAX_DAYS) {
        replace(formProblem, notice("error", `Expires in days: a whole number from 1 to ${MAX_DAYS}, or blank.`));
        days.focus();
        return;
      }
      body.expires_in_days = n;
    }
    submit.disabled = true;
    try {
      const token = await api("POST", "/tokens", {json: body});
      form.reset();
      showCreated(token);
      await load([]);
    } catch (err) {
      replace(formProblem, errorNotice(err));
    } finally {
      submit.disabled = false;
    }
  });

  let trail = [];

  function revokeCell(token) {
    if (!active(token)) return h("span", {class: "muted"}, "—");
    const cell = h("div", {class: "row"});
    const ask = () => replace(cell,
      h("span", {}, `Revoke "${token.name}"? Its API calls and console sessions stop at once.`),
      button("Confirm revoke", async (e) => {
        e.target.disabled = true;
        try {
          await api("DELETE", `/tokens/${encodeURIComponent(token.id)}`);
          replace(message, notice("ok", `Token "${token.name}" revoked.`));
          await load(trail);
        } catch (err) {
          replace(message, errorNotice(err));
          reset();
        }
      }, {class: "danger"}),
      button("Cancel", () => reset()));
    const reset = () => replace(cell,
      button("Revoke", ask, {class: "danger", "aria-label": `Revoke ${token.name}`}));
    reset();
    return cell;
  }

  async function load(nextTrail) {
    const cursor = nextTrail.length ? nextTrail[nextTrail.length - 1] : null;
    let page;
    try {
      page = await api("GET", "/tokens", {query: {limit: 50, cursor}});
    } catch (err) {
      replace(list, errorNotice(err));
      return;
    }
    trail = nextTrail;
    const columns = [
      {label: "Name", cell: (t) => h("span", {class: "token-name"}, t.name)},
      {label: "Role", cell: (t) => h("span", {class: `badge role-${t.role}`}, t.role)},
      {label: "Prefix", cell: (t) => h("code", {}, t.prefix)},
      {label: "Created", cell: (t) => h("span", {title: when(t.created_at)}, timeAgo(t.created_at))},
      {label: "Last used", cell: (t) => timeAgo(t.last_used_at)},
      {label: "Expires", cell: (t) => (t.expires_at ? h("span", {}, timeAgo(t.expires_at))
        : h("span", {class: "muted"}, "never"))},
      {label: "Revoked", cell: (t) => (t.revoked_at ? timeAgo(t.revoked_at) : h("span", {class: "muted"}, "no"))},
      {label: "Status", cell: (t) => status(t)},
      {label: "Actions", cell: (t) => revokeCell(t)},
    ];
    replace(list,
      h("p", {class: "muted", role: "status"}, `${page.total} token${page.total === 1 ? "" : "s"} in this organization`
        + " (revoked and expired included)."),
      table(columns, page.items, {caption: "API tokens", empty: "No token."}),
      h("nav", {class: "pager", "aria-label": "Token pages"},
        button("Newest", () => load([]), {disabled: !trail.length}),
        button("Older", () => load([...trail, page.next_cursor]), {disabled: !page.next_cursor})));
  }

  replace(root,
    h("p", {class: "muted"}, "API tokens sign in to the console and call the API. Their values are shown once, "
      + "when created; only a hash is kept."),
    created, form, message, listing);
  await load([]);
  ctx.setTitle("Tokens");
}
