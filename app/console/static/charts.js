// Charts drawn by the page as inline SVG, with no library: per-day bars with a line on a
// second axis, and a histogram. Each SVG is role="img" named by a one-sentence summary, and
// every bar or point carries a <title> with its figures for a pointer hovering over it.
import { shortDay } from "./reportfmt.js";

const NS = "http://www.w3.org/2000/svg";
const W = 640;
const H = 270;
const M = { top: 34, right: 58, bottom: 48, left: 52 };
const PLOT_W = W - M.left - M.right;
const PLOT_H = H - M.top - M.bottom;

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const tip = (text) => svg("title", {}, text);

function frame(label, className) {
  return svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": label,
    class: `chart-svg ${className}`,
    preserveAspectRatio: "xMidYMid meet",
  });
}

// 0 … a round maximum in `count` steps of 1, 2, 2.5 or 5 × 10^n (whole numbers when `whole`).
export function niceTicks(max, count = 4, whole = true) {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= raw);
  if (whole) step = Math.max(1, Math.ceil(step));
  const steps = Math.max(1, Math.ceil(max / step - 1e-9));
  return Array.from({ length: steps + 1 }, (_, i) => Number((i * step).toFixed(6)));
}

function yAxis(ticks, y, side, format) {
  const x = side === "left" ? M.left : W - M.right;
  return ticks.map((v) =>
    svg("g", { class: "tick" },
      side === "left" ? svg("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: "grid" }) : null,
      svg("text", {
        x: side === "left" ? x - 6 : x + 6, y: y(v) + 4, "text-anchor": side === "left" ? "end" : "start",
        class: side === "left" ? "tick-label" : "tick-label right",
      }, format(v)),
    ),
  );
}

function axisTitle(text, side) {
  if (side === "bottom") {
    return svg("text", { x: M.left + PLOT_W / 2, y: H - 6, "text-anchor": "middle", class: "axis-title" }, text);
  }
  const x = side === "left" ? 14 : W - 10;
  const y = M.top + PLOT_H / 2;
  return svg("text", {
    x, y, transform: `rotate(${side === "left" ? -90 : 90} ${x} ${y})`, "text-anchor": "middle", class: "axis-title",
  }, text);
}

// About how wide a label is at 12px: CJK characters are full width. (An SVG built off the
// page cannot be measured, and a legend is too small to be worth a second layout pass.)
function textWidth(text) {
  return [...text].reduce((w, ch) => w + (ch.codePointAt(0) > 0x2e80 ? 12.5 : 7.2), 0);
}

function legend(entries) {
  let x = M.left;
  return entries.map(([label, className, shape]) => {
    const g = svg("g", { class: "legend-entry" },
      shape === "line"
        ? svg("line", { x1: x, x2: x + 16, y1: 14, y2: 14, class: `${className} legend-line` })
        : svg("rect", { x, y: 8, width: 12, height: 12, rx: 2, class: className }),
      svg("text", { x: x + 20, y: 18, class: "legend-label" }, label),
    );
    x += 28 + textWidth(label);
    return g;
  });
}

function noData(text) {
  return svg("text", { x: M.left + PLOT_W / 2, y: M.top + PLOT_H / 2, "text-anchor": "middle", class: "no-data" }, text);
}

/**
 * Incidents and early disposals per day as paired bars (left axis) and the on-scene median
 * as a line in minutes (right axis). `days`: the items of a group_by=day report.
 */
export function dailyChart(days, text) {
  const root = frame(text.summary, "daily");
  const n = Math.max(days.length, 1);
  const step = PLOT_W / n;
  const bar = Math.max(1, Math.min(18, step * 0.38));
  const counts = niceTicks(Math.max(1, ...days.map((d) => Math.max(d.incidents, d.early_disposals))));
  const topCount = counts.at(-1);
  const medians = days.map((d) => (d.on_scene_s_p50 === null ? null : d.on_scene_s_p50 / 60));
  const mins = niceTicks(Math.max(1, ...medians.filter((v) => v !== null)), 4, false);
  const topMin = mins.at(-1);
  const yCount = (v) => M.top + PLOT_H - (v / topCount) * PLOT_H;
  const yMin = (v) => M.top + PLOT_H - (v / topMin) * PLOT_H;
  const x0 = (i) => M.left + i * step + step / 2;

  root.append(
    ...yAxis(counts, yCount, "left", (v) => String(v)),
    ...yAxis(mins, yMin, "right", (v) => String(v)),
    svg("line", { x1: M.left, x2: W - M.right, y1: M.top + PLOT_H, y2: M.top + PLOT_H, class: "axis" }),
  );
  const every = Math.ceil(n / 8);
  days.forEach((d, i) => {
    const figures = text.dayTitle(d);
    root.append(
      svg("rect", { x: x0(i) - bar, y: yCount(d.incidents), width: bar, height: M.top + PLOT_H - yCount(d.incidents), class: "bar incidents" }, tip(figures)),
      svg("rect", { x: x0(i), y: yCount(d.early_disposals), width: bar, height: M.top + PLOT_H - yCount(d.early_disposals), class: "bar early" }, tip(figures)),
    );
    if ((n - 1 - i) % every === 0) { // counted back from the last day, which is always labelled
      root.append(svg("text", { x: x0(i), y: M.top + PLOT_H + 16, "text-anchor": "middle", class: "tick-label" }, shortDay(d.key)));
    }
  });
  // The median line breaks over days with nobody on scene rather than drawing through zero.
  let path = "";
  medians.forEach((v, i) => {
    if (v === null) return;
    path += `${i === 0 || medians[i - 1] === null ? "M" : "L"}${x0(i).toFixed(1)} ${yMin(v).toFixed(1)} `;
  });
  if (path) root.append(svg("path", { d: path.trim(), class: "line on-scene" }));
  medians.forEach((v, i) => {
    if (v !== null) root.append(svg("circle", { cx: x0(i), cy: yMin(v), r: 3.2, class: "dot on-scene" }, tip(text.dayTitle(days[i]))));
  });
  if (!days.some((d) => d.incidents > 0)) root.append(noData(text.noData));
  root.append(
    ...legend([[text.incidents, "incidents", "rect"], [text.early, "early", "rect"], [text.onScene, "on-scene", "line"]]),
    axisTitle(text.yLeft, "left"),
    axisTitle(text.yRight, "right"),
    axisTitle(text.x, "bottom"),
  );
  return root;
}

/** Equal-width bars for the fixed buckets of /reports/response/distribution. */
export function histogram(buckets, text) {
  const root = frame(text.summary, "histogram");
  const n = Math.max(buckets.length, 1);
  const step = PLOT_W / n;
  const ticks = niceTicks(Math.max(1, ...buckets.map((b) => b.count)));
  const top = ticks.at(-1);
  const y = (v) => M.top + PLOT_H - (v / top) * PLOT_H;
  root.append(
    ...yAxis(ticks, y, "left", (v) => String(v)),
    svg("line", { x1: M.left, x2: W - M.right, y1: M.top + PLOT_H, y2: M.top + PLOT_H, class: "axis" }),
  );
  buckets.forEach((b, i) => {
    const x = M.left + i * step;
    const label = text.bucket(b);
    root.append(
      svg("rect", { x: x + step * 0.1, y: y(b.count), width: step * 0.8, height: M.top + PLOT_H - y(b.count), class: "bar bucket" }, tip(`${label}: ${b.count}`)),
      svg("text", { x: x + step / 2, y: M.top + PLOT_H + 16, "text-anchor": "middle", class: "tick-label" }, label),
    );
    if (b.count > 0) {
      root.append(svg("text", { x: x + step / 2, y: y(b.count) - 4, "text-anchor": "middle", class: "bar-value" }, b.count));
    }
  });
  if (!buckets.some((b) => b.count > 0)) root.append(noData(text.noData));
  root.append(axisTitle(text.yLeft, "left"), axisTitle(text.x, "bottom"));
  return root;
}
