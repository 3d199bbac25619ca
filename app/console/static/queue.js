// The incident queue: priority first, then oldest first, with live ages and filters. It
// holds the incidents the console knows; the map and the detail read from it.
import { el } from "./dom.js";
import { age } from "./format.js";
import { t, term } from "./i18n.js";

const OPEN = ["new", "dispatching", "assigned", "on_scene"];

// A drill runs like any incident; the badge keeps anyone from mistaking it for a real one.
export function drillBadge() {
  return el("span", { class: "badge drill", title: t("drill.title"), text: t("drill.badge") });
}

export class Queue {
  constructor(list, count, onSelect) {
    this.list = list;
    this.count = count;
    this.onSelect = onSelect;
    this.incidents = new Map();
    this.stations = new Map();
    this.filters = { status: "open", priority: "", station: "", unstaffed: false };
    this.selectedId = null;
    this.visible = [];
  }

  matches(incident) {
    const f = this.filters;
    if (f.status === "open" && !OPEN.includes(incident.status)) return false;
    if (f.status !== "open" && f.status !== "all" && incident.status !== f.status) return false;
    if (f.priority && String(incident.priority) !== f.priority) return false;
    if (f.station && incident.station_id !== f.station) return false;
    if (f.unstaffed && !incident.unstaffed) return false;
    return true;
  }

  replaceAll(incidents) {
    this.incidents = new Map(incidents.map((i) => [i.id, i]));
    this.render();
  }

  upsert(incident) {
    this.incidents.set(incident.id, incident);
    this.render();
  }

  get(id) {
    return this.incidents.get(id);
  }

  render() {
    this.visible = [...this.incidents.values()]
      .filter((i) => this.matches(i))
      .sort((a, b) => a.priority - b.priority || Date.parse(a.created_at) - Date.parse(b.created_at));
    this.count.textContent = t("queue.count", { n: this.visible.length });
    if (!this.visible.length) {
      this.list.replaceChildren(el("li", { class: "queue-empty", text: t("queue.empty") }));
      return;
    }
    this.list.replaceChildren(...this.visible.map((i) => this.row(i)));
  }

  row(incident) {
    const selected = incident.id === this.selectedId;
    const station = this.stations.get(incident.station_id);
    return el(
      "li",
      {
        role: "option",
        id: `q-${incident.id}`,
        "aria-selected": selected ? "true" : "false",
        "data-id": incident.id,
        class: `queue-row p${incident.priority}${incident.unstaffed ? " unstaffed" : ""}`,
        onclick: () => this.select(incident.id, true),
      },
      el("span", { class: `badge p${incident.priority}`, text: `P${incident.priority}` }),
      el(
        "span",
        { class: "queue-main" },
        incident.exercise ? drillBadge() : null,
        el("strong", { text: term("category", incident.category) }),
        " ",
        el("span", { class: "queue-desc", text: incident.address || incident.description }),
        el(
          "span",
          { class: "queue-meta" },
          el("span", { class: `status s-${incident.status}`, text: term("status", incident.status) }),
          incident.unstaffed ? el("span", { class: "flag-unstaffed", text: `⚠ ${t("queue.unstaffed")}` }) : null,
          station ? el("span", { class: "queue-station", text: station.name }) : null,
        ),
      ),
      el("time", { class: "age", "data-since": incident.created_at, datetime: incident.created_at, text: age(incident.created_at) }),
    );
  }

  select(id, open = false) {
    this.selectedId = id;
    for (const row of this.list.querySelectorAll("[role=option]")) {
      row.setAttribute("aria-selected", row.dataset.id === id ? "true" : "false");
    }
    const row = document.getElementById(`q-${id}`);
    row?.scrollIntoView({ block: "nearest" });
    if (row) this.list.setAttribute("aria-activedescendant", row.id);
    this.onSelect(id, open);
  }

  move(step) {
    if (!this.visible.length) return;
    const at = this.visible.findIndex((i) => i.id === this.selectedId);
    const next = at < 0 ? 0 : Math.min(this.visible.length - 1, Math.max(0, at + step));
    this.select(this.visible[next].id, false);
  }

  tick(now) {
    for (const node of this.list.querySelectorAll("time[data-since]")) {
      node.textContent = age(node.dataset.since, now);
    }
  }
}
