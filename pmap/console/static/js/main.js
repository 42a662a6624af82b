// Loads the page's own script (templates/page.html names it) and hands it the page's context.
import {errorNotice, replace} from "./dom.js";

const root = document.getElementById("app");
const role = document.body.dataset.role || "viewer";
const rank = {viewer: 1, operator: 2, admin: 3}[role] || 1;

/** What the signed-in role may do; the server checks every call anyway. */
export const ctx = {
  role,
  params: {...root.dataset},
  can: {operate: rank >= 2, admin: rank >= 3},
  setTitle(text) {
    const title = document.getElementById("page-title");
    if (title) title.textContent = text;
    document.title = `${text} · PMAP`;
  },
};

const script = root.dataset.script;
if (/^[a-z_]+$/.test(script)) {
  import(`./pages/${script}.js`)
    .then((page) => page.render(root, ctx))
    .catch((err) => replace(root, errorNotice(err)));
}
