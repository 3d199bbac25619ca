// Area broadcasts: a message (a missing child, a wanted vehicle) to every on-duty guard
// inside a circle until it expires. Created from the map (a click, or b at the map's
// centre), listed with how many guards it was queued for, delivered to and acknowledged by,
// and drawn on the map as a dashed circle.
import * as api from "./api.js";
import { el } from "./dom.js";
import { clockTime, distance, errorText, secondsUntil } from "./format.js";
import { t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const COUNTS_EVERY_MS = 5000; // delivered / acknowledged change without an event

export function mayBroadcast() {
  return api.may("incidents:operate") || api.may("police:act");
}

export class BroadcastPanel {
  constructor(root, { stationName, onCircles, onFocus }) {
    this.root = root;
    this.list = root.querySelector(".broadcast-list");
    this.count = root.querySelector(".broadcast-count");
    this.form = root.querySelector("form");
    this.stationName = stationName;
    this.onCircles = onCircles; // (active broadcasts) => void: draw them on the map
    this.onFocus = onFocus;
    this.items = [];
    this.selectedId = null;
    this.error = "";
    this.timer = 0;
    this.form.onchange = () => this.load();
    setInterval(() => this.items.some((b) => b.active) && this.load(), COUNTS_EVERY_MS);
  }

  async load() {
    const activeOnly = this.form.elements.active.checked;
    try {
      const page = await api.get(`/api/v1/broadcasts?limit=200${activeOnly ? "&active=true" : ""}`);
      this.items = page.items;
      this.error = "";
      const active = activeOnly ? this.items : (await api.get("/api/v1/broadcasts?limit=200&active=true")).items;
      this.onCircles(active);
    } catch (error) {
      this.error = errorText(error);
    }
    this.render();
  }

  changed() {
    this.timer ||= setTimeout(() => {
      this.timer = 0;
      this.load();
    }, 200);
  }

  render() {
    this.count.textContent = t("broadcast.count", { n: this.items.length });
    const rows = this.items.map((b) => this.row(b));
    if (this.error) rows.unshift(el("li", { class: "form-error", role: "alert", text: this.error }));
    if (!this.items.length) rows.push(el("li", { class: "queue-empty", text: t("broadcast.empty") }));
    this.list.replaceChildren(...rows);
  }

  row(b) {
    const left = secondsUntil(b.expires_at);
    return el(
      "li",
      {
        role: "option",
        id: `bc-${b.id}`,
        class: `broadcast-row${b.active ? "" : " ended"}`,
        "aria-selected": b.id === this.selectedId ? "true" : "false",
        "data-id": b.id,
        onclick: () => this.select(b.id),
      },
      el("p", { class: "broadcast-text", text: b.text }),
      el(
        "div",
        { class: "broadcast-meta" },
        el("span", { class: "broadcast-counts", title: t("broadcast.countsTitle") },
          t("broadcast.counts", { recipients: b.recipients, delivered: b.delivered, acknowledged: b.acknowledged })),
        el("span", { class: "queue-station", text: b.station_id ? this.stationName(b.station_id) : "" }),
        el("span", { class: "broadcast-radius", text: t("broadcast.radiusShort", { m: distance(b.radius_m) }) }),
        el("time", {
          class: "age",
          "data-until": b.expires_at,
          datetime: b.expires_at,
          text: left > 0 ? t("broadcast.until", { time: clockTime(b.expires_at) }) : t("broadcast.expired"),
        }),
      ),
    );
  }

  select(id) {
    this.selectedId = id;
    this.render();
    const row = $(`bc-${id}`);
    row?.scrollIntoView({ block: "nearest" });
    if (row) this.list.setAttribute("aria-activedescendant", row.id);
    const b = this.items.find((x) => x.id === id);
    if (b) this.onFocus(b);
  }

  move(step) {
    if (!this.items.length) return;
    const at = this.items.findIndex((b) => b.id === this.selectedId);
    this.select(this.items[at < 0 ? 0 : Math.min(this.items.length - 1, Math.max(0, at + step))].id);
  }

  tick() {
    if (this.items.some((b) => b.active && secondsUntil(b.expires_at) <= 0)) this.changed();
  }
}

// The dialog: centre from the map, radius, text and how long it stays; the API's
// validation errors next to the field they name.
export function openBroadcast(latlng, onCreated) {
  const dialog = $("broadcast");
  const form = $("broadcast-form");
  const lat = Number(latlng.lat.toFixed(6));
  const lon = Number(latlng.lng.toFixed(6));
  $("broadcast-location").textContent = `${lat}, ${lon}`;
  form.elements.radius.value = "1000";
  form.elements.text.value = "";
  form.elements.minutes.value = "120";
  showErrors({});
  $("broadcast-cancel").onclick = () => dialog.close();
  form.onsubmit = async (e) => {
    e.preventDefault();
    const minutes = Number(form.elements.minutes.value);
    const body = {
      location: { lat, lon },
      radius_m: form.elements.radius.value === "" ? null : Number(form.elements.radius.value),
      text: form.elements.text.value,
      expires_at: Number.isFinite(minutes) && form.elements.minutes.value !== ""
        ? new Date(Date.now() + minutes * 60000).toISOString()
        : null,
    };
    try {
      const created = await api.post("/api/v1/broadcasts", body);
      dialog.close();
      onCreated(created);
    } catch (err) {
      if (err instanceof api.ApiError && err.status === 422) showErrors(err.fieldErrors(), err.message);
      else showErrors({}, errorText(err));
    }
  };
  dialog.showModal();
  form.elements.text.focus();
}

// API field → the dialog's field (expires_at is asked as minutes from now).
const FIELDS = { radius_m: "radius", text: "text", expires_at: "minutes", location: "location" };

function showErrors(byField, general = "") {
  let placed = false;
  for (const [apiName, name] of Object.entries(FIELDS)) {
    const node = $(`broadcast-error-${name}`);
    const key = Object.keys(byField).find((f) => f === apiName || f.startsWith(`${apiName}.`));
    node.textContent = key ? `${key}: ${byField[key]}` : "";
    node.hidden = !key;
    placed ||= Boolean(key);
    $(`broadcast-${name}`)?.setAttribute("aria-invalid", key ? "true" : "false");
  }
  const error = $("broadcast-error");
  error.textContent = placed ? "" : general;
  error.hidden = placed || !general;
}
