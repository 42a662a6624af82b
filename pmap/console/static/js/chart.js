// Small SVG bar charts drawn with dom.js svg(): no chart library. Each chart is an image with an accessible
// name stating its numbers (role="img", aria-label) and is followed by a table of the same numbers, so
// the numbers can be read as well as looked at (and by a screen reader or a test).
import {h, svg} from "./dom.js";

const BAR = 22; // bar height
const GAP = 8; // between bars
const LABEL_W = 150; // room for the label column
const VALUE_W = 56; // room for the number after a bar
const WIDTH = 640;

function fillClass(key) {
  return `fill-${/^[a-z]+$/.test(key) ? key : "unknown"}`;
}

function shorten(text, max = 22) {
  const s = String(text);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/**
 * A horizontal bar chart: bars [{key, label, value, href?}] (key names the fill-<key> class; href makes the
 * table's label a link), with a caption.
 * Returns a <figure> holding the SVG image and a table of the same numbers.
 */
export function barChart(caption, bars, {valueLabel = "Findings", id} = {}) {
  const max = Math.max(1, ...bars.map((b) => b.value));
  const height = bars.length * (BAR + GAP) + GAP;
  const plot = WIDTH - LABEL_W - VALUE_W;
  const summary = bars.map((b) => `${b.label} ${b.value}`).join(", ");
  const image = svg("svg", {class: "chart", role: "img", viewBox: `0 0 ${WIDTH} ${height}`,
    "aria-label": `${caption}: ${summary || "none"}`, preserveAspectRatio: "xMinYMin meet"},
  bars.map((b, i) => {
    const y = GAP + i * (BAR + GAP);
    const w = b.value > 0 ? Math.max(2, Math.round((b.value / max) * plot)) : 0;
    return svg("g", {"aria-hidden": "true"},
      svg("text", {x: LABEL_W - 8, y: y + BAR / 2 + 4, "text-anchor": "end"}, shorten(b.label)),
      svg("rect", {x: LABEL_W, y, width: w, height: BAR, rx: 3, class: fillClass(b.key)}),
      svg("text", {x: LABEL_W + w + 6, y: y + BAR / 2 + 4}, String(b.value)));
  }));
  const numbers = h("table", {class: "chart-numbers"},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, h("th", {scope: "col"}, ""), h("th", {scope: "col"}, valueLabel))),
    h("tbody", {}, bars.map((b) => h("tr", {dataset: {key: b.key}},
      h("th", {scope: "row"}, b.href ? h("a", {href: b.href}, b.label) : b.label), h("td", {}, String(b.value))))));
  return h("figure", {class: "chart-figure", id},
    h("figcaption", {}, caption), h("div", {class: "chart-body"}, image, h("div", {class: "table-wrap"}, numbers)));
}

/**
 * A stacked horizontal bar chart: rows [{label, total, parts: {key: n}, href?}], parts drawn in `keys` order with
 * fill-<key>. Returns a <figure> with the SVG image and a table (one row per bar, one column per key).
 */
export function stackedChart(caption, rows, keys, {keyLabel = (k) => k, id} = {}) {
  const max = Math.max(1, ...rows.map((r) => r.total));
  const legendH = 26;
  const height = legendH + rows.length * (BAR + GAP) + GAP;
  const plot = WIDTH - LABEL_W - VALUE_W;
  const summary = rows.map((r) => `${r.label} ${r.total} (${keys.filter((k) => r.parts[k])
    .map((k) => `${keyLabel(k)} ${r.parts[k]}`).join(", ") || "none"})`).join("; ");
  const legend = svg("g", {"aria-hidden": "true"}, keys.map((k, i) => svg("g", {},
    svg("rect", {x: LABEL_W + i * 86, y: 6, width: 12, height: 12, rx: 2, class: fillClass(k)}),
    svg("text", {x: LABEL_W + i * 86 + 16, y: 16}, keyLabel(k)))));
  const image = svg("svg", {class: "chart", role: "img", viewBox: `0 0 ${WIDTH} ${height}`,
    "aria-label": `${caption}: ${summary || "none"}`, preserveAspectRatio: "xMinYMin meet"}, legend,
  rows.map((r, i) => {
    const y = legendH + GAP + i * (BAR + GAP);
    let x = LABEL_W;
    const segments = keys.map((k) => {
      const n = r.parts[k] || 0;
      if (!n) return null;
      const w = Math.max(2, Math.round((n / max) * plot));
      const seg = svg("rect", {x, y, width: w, height: BAR, class: fillClass(k)});
      x += w;
      return seg;
    });
    return svg("g", {"aria-hidden": "true"},
      svg("text", {x: LABEL_W - 8, y: y + BAR / 2 + 4, "text-anchor": "end"}, shorten(r.label)),
      segments,
      svg("text", {x: x + 6, y: y + BAR / 2 + 4}, String(r.total)));
  }));
  const numbers = h("table", {class: "chart-numbers"},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, h("th", {scope: "col"}, ""), keys.map((k) => h("th", {scope: "col"}, keyLabel(k))),
      h("th", {scope: "col"}, "Total"))),
    h("tbody", {}, rows.map((r) => h("tr", {},
      h("th", {scope: "row"}, r.href ? h("a", {href: r.href}, r.label) : r.label), keys.map((k) => h("td", {}, String(r.parts[k] || 0))),
      h("td", {}, String(r.total))))));
  return h("figure", {class: "chart-figure", id},
    h("figcaption", {}, caption), h("div", {class: "chart-body"}, image, h("div", {class: "table-wrap"}, numbers)));
}
