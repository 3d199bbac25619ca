// The console: signs in, loads the picture (stations, units, incidents), keeps it live from
// the two sockets, and routes the operator's keys and clicks to the API.
import * as api from "./api.js";
import { BroadcastPanel, mayBroadcast, openBroadcast } from "./broadcasts.js";
import { Detail } from "./detail.js";
import { openCreate, signInDialog } from "./dialogs.js";
import { clockTime, errorText, setTimeZone, zoneName } from "./format.js";
import { applyTranslations, language, setLanguage, t, term } from "./i18n.js";
import { IntelPanel } from "./intel.js";
import { LiveMap, legend } from "./map.js";
import { FieldOverlays } from "./overlays.js";
import { Queue } from "./queue.js";
import { mayReadReports, ReportsView } from "./reports.js";
import { EventStream, PositionFeed } from "./stream.js";

const config = JSON.parse(document.getElementById("console-config").textContent);
setTimeZone(config.timezone);

const state = {
  map: null,
  queue: null,
  detail: null,
  intel: null, // the intel queue, for roles that may read it
  broadcasts: null,
  overlays: null,
  tab: "incidents",
  view: "dispatch", // or "reports", for roles that may read them
  reports: null,
  events: null,
  positions: null,
  stations: new Map(),
  guardNames: new Map(),
  dirty: new Set(),
  flushTimer: 0,
};

const $ = (id) => document.getElementById(id);

function guardName(id) {
  return state.guardNames.get(id) ?? id;
}

function stationName(id) {
  return state.stations.get(id)?.name ?? id ?? "—";
}

async function start() {
  applyTranslations(document);
  $("lang-switch").addEventListener("click", () => {
    setLanguage(language() === "en" ? "zh" : "en");
    rerender();
  });
  $("sign-out").addEventListener("click", signOut);
  api.onSessionExpired(() => signInDialog({ expired: true }));
  if (api.signedIn()) {
    try {
      await api.loadMe();
    } catch {
      api.signOut();
    }
  }
  if (!api.me()) await signInDialog({ expired: false });
  await enter();
}

async function enter() {
  const me = api.me();
  $("who").textContent = t("who.signedIn", { name: me.name, role: term("role", me.role) });
  $("sign-out").hidden = false;
  $("console").hidden = false;
  document.body.classList.toggle("can-create", api.may("incidents:write"));
  state.map ??= new LiveMap($("map"), config, {
    onClick: (latlng) => {
      if (state.tab === "broadcasts") return mayBroadcast() && openBroadcast(latlng, broadcastSent);
      return api.may("incidents:write") && openCreate(latlng, created);
    },
    onIncidentClick: (id) => state.queue.select(id, true),
    onViewChange: (bbox) => state.positions?.setView(bbox),
  });
  legend($("legend"));
  state.queue ??= new Queue($("queue"), $("queue-count"), (id, open) => showDetail(id, open));
  state.detail ??= new Detail($("detail-region"), { guardName, stationName, act });
  setUpFieldPanels();
  setUpReports();
  bindFilters();
  bindKeys();
  await loadStatic();
  await reloadIncidents();
  await reloadFieldPanels();
  startStreams();
  setInterval(tick, 1000);
  tick();
}

async function loadStatic() {
  const stations = await api.getAll("/api/v1/stations");
  state.stations = new Map(stations.map((s) => [s.id, s]));
  state.queue.stations = state.stations;
  state.map.setPrecincts(stations);
  for (const select of document.querySelectorAll("#filters select[name=station], #intel-panel select[name=station]")) {
    select.replaceChildren(select.options[0], ...stations.map((s) => new Option(s.name, s.id)));
  }
  await loadUnits();
}

async function loadUnits() {
  // Police units are for the dispatch and police side, not for a company manager.
  if (!api.may("incidents:read")) return;
  state.map.setUnits(await api.getAll("/api/v1/units"));
}

// A fresh load of every open incident (and the selected one): after sign-in and after any
// reconnect, so the screen always equals what a reload would show.
async function reloadIncidents() {
  if (!api.may("incidents:read")) return state.queue.replaceAll([]); // a company manager: their guards only
  const open = await api.getAll("/api/v1/incidents?status=new,dispatching,assigned,on_scene");
  const f = state.queue.filters.status;
  const extra = f === "open" ? [] : await api.getAll(`/api/v1/incidents${f === "all" ? "" : `?status=${f}`}`, 1000);
  const all = [...open, ...extra.filter((i) => !open.some((o) => o.id === i.id))];
  state.queue.replaceAll(all);
  for (const id of [...state.map.incidentMarkers.keys()]) state.map.dropIncident(id);
  for (const incident of all) state.map.showIncident(incident, incident.id === state.queue.selectedId);
  if (state.queue.selectedId) await showDetail(state.queue.selectedId);
}

async function showDetail(id, focus = false) {
  try {
    const [incident, events] = await Promise.all([
      api.get(`/api/v1/incidents/${id}`),
      api.getAll(`/api/v1/incidents/${id}/events`, 2000),
    ]);
    await learnGuards(incident);
    state.queue.upsert(incident);
    for (const other of state.queue.incidents.values()) {
      state.map.showIncident(other, other.id === id);
    }
    if (focus) state.map.focus(incident.location.lat, incident.location.lon);
    state.detail.show(incident, events);
  } catch (error) {
    state.detail.showError(errorText(error));
  }
}

async function learnGuards(incident) {
  const unknown = new Set(
    [...incident.offers, ...incident.assignments].map((x) => x.guard_id).filter((g) => !state.guardNames.has(g)),
  );
  await Promise.all(
    [...unknown].map(async (id) => {
      try {
        const guard = await api.get(`/api/v1/guards/${id}`);
        state.guardNames.set(id, `${guard.name} · ${guard.badge_no}`);
      } catch {
        state.guardNames.set(id, id);
      }
    }),
  );
}

function startStreams() {
  if (api.may("events:read")) startEventStream();
  else setLive(true); // nothing to follow but positions
  if (api.may("positions:read")) startPositionFeed();
  window.dispatchConsole = {
    events: state.events, positions: state.positions, map: state.map, overlays: state.overlays,
  };
}

function startEventStream() {
  state.events = new EventStream({
    onFrame: (frame) => {
      state.events.seen(frame);
      if (frame.incident_id) markDirty(frame.incident_id);
      if (frame.type?.startsWith("unit.")) markDirty("units");
      if (frame.type?.startsWith("intel.")) state.intel?.changed();
      if (frame.type?.startsWith("broadcast.")) state.broadcasts?.changed();
    },
    onState: (live) => {
      setLive(live);
      if (live) {
        reloadIncidents().catch(() => {});
        reloadFieldPanels();
      }
    },
  });
  state.events.start();
}

function startPositionFeed() {
  state.positions = new PositionFeed(
    {
      onFrame: (frame) => {
        if (frame.type === "positions.snapshot") {
          learnNames(frame.items);
          state.map.resetGuards(frame.items);
        } else if (frame.type === "positions") {
          learnNames(frame.items);
          state.map.queueGuards(frame.items, frame.gone ?? []);
        }
      },
      onState: () => {},
    },
    state.map.bbox(),
  );
  state.positions.start();
}

function learnNames(items) {
  for (const item of items) {
    if (item.name) state.guardNames.set(item.guard_id, `${item.name} · ${item.badge_no ?? ""}`);
  }
}

function setLive(live) {
  $("banner").hidden = live;
  const pill = $("live");
  pill.dataset.state = live ? "on" : "off";
  pill.dataset.i18n = live ? "stream.live" : "stream.offline";
  pill.textContent = t(pill.dataset.i18n);
}

// Events arrive in bursts; re-read each touched incident once per 200 ms.
function markDirty(id) {
  state.dirty.add(id);
  state.flushTimer ||= setTimeout(flushDirty, 200);
}

async function flushDirty() {
  state.flushTimer = 0;
  const ids = [...state.dirty];
  state.dirty.clear();
  for (const id of ids) {
    try {
      if (id === "units") await loadUnits();
      else if (id === state.queue.selectedId) await showDetail(id);
      else {
        const incident = await api.get(`/api/v1/incidents/${id}`);
        state.queue.upsert(incident);
        state.map.showIncident(incident, false);
      }
    } catch {
      // gone or not visible to this role: the next reload settles it
    }
  }
}

async function act(action, incident, extra) {
  const base = `/api/v1/incidents/${incident.id}`;
  const confirmable = { cancel: "action.cancel", escalate: "action.escalate", close: "action.close" };
  if (confirmable[action] && !window.confirm(t("action.confirm", { action: t(confirmable[action]), id: incident.id }))) return;
  try {
    if (action === "assign") {
      const { lat, lon } = incident.location;
      const page = await api.get(`/api/v1/guards/nearby?lat=${lat}&lon=${lon}&radius_m=5000&limit=10`);
      state.detail.showNearby(page.items);
      return;
    }
    const calls = {
      "assign-guard": () => api.post(`${base}/assign`, { guard_id: extra }),
      escalate: () => api.post(`${base}/escalate`),
      cancel: () => api.post(`${base}/cancel`),
      resolve: () => api.post(`${base}/resolve`),
      close: () => api.post(`${base}/close`),
      withdraw: () => api.post(`${base}/offers/${extra}/withdraw`),
      instruct: () => api.post(`${base}/instructions`, { text: extra }),
      "police-ack": () => api.post(`${base}/police/ack`, { station_id: extra }),
      "police-arrived": () => api.post(`${base}/police/arrived`, { station_id: extra }),
      "police-handover": () => api.post(`${base}/police/handover`, { station_id: extra }),
    };
    await calls[action]();
    state.detail.nearby = null;
    state.detail.error = "";
    await showDetail(incident.id);
  } catch (error) {
    state.detail.showError(errorText(error));
  }
}

async function created(incident) {
  state.queue.upsert(incident);
  state.map.showIncident(incident, true);
  state.queue.select(incident.id, true);
}

function bindFilters() {
  const form = $("filters");
  form.onchange = async () => {
    const data = new FormData(form);
    Object.assign(state.queue.filters, {
      status: data.get("status"),
      priority: data.get("priority"),
      station: data.get("station"),
      unstaffed: data.get("unstaffed") === "on",
    });
    await reloadIncidents();
  };
  const status = form.elements.status;
  if (status.options.length === 2) {
    for (const s of ["new", "dispatching", "assigned", "on_scene", "resolved", "closed", "cancelled"]) {
      status.append(new Option(term("status", s), s));
    }
  }
}

function bindKeys() {
  if (document.body.dataset.keys) return;
  document.body.dataset.keys = "on";
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (document.querySelector("dialog[open]")) return;
    const typing = e.target.closest?.("input, textarea, select");
    if (state.view === "reports") return reportsKey(e, typing);
    if (e.key === "Escape") {
      if (typing) e.target.blur();
      else if (state.tab !== "incidents") showTab("incidents");
      else if (state.detail.nearby) {
        state.detail.nearby = null;
        state.detail.render();
      } else {
        state.queue.selectedId = null;
        state.queue.render();
        state.detail.renderEmpty();
      }
      return;
    }
    if (typing) return;
    if (e.key === "r" && state.reports) {
      e.preventDefault();
      showView("reports");
      return;
    }
    const tabKeys = { 1: "incidents", 2: "intel", 3: "broadcasts" };
    if (tabKeys[e.key]) {
      e.preventDefault();
      showTab(tabKeys[e.key]);
      return;
    }
    if (state.tab !== "incidents") return fieldKey(e);
    const selected = state.queue.get(state.queue.selectedId);
    const keys = {
      j: () => state.queue.move(1),
      k: () => state.queue.move(-1),
      Enter: () => selected && state.queue.select(selected.id, true),
      n: () => api.may("incidents:write") && openCreate(state.map.centre(), created),
      a: () => selected && api.may("incidents:operate") && act("assign", selected),
      e: () => selected && api.may("incidents:operate") && act("escalate", selected),
    };
    if (keys[e.key]) {
      e.preventDefault();
      keys[e.key]();
    }
  });
}

// The field side: the intel queue and area broadcasts, as tabs beside the incident queue,
// each shown only to a role that may read it.
function setUpFieldPanels() {
  if (state.overlays) return;
  state.overlays = new FieldOverlays(state.map);
  if (api.may("police:act") || api.may("incidents:read")) {
    state.intel = new IntelPanel($("intel-panel"), {
      stationName,
      onFocus: (report) => state.overlays.showIntel(report),
    });
    state.intel.onCount = (n) => {
      $("intel-new").textContent = String(n);
      $("intel-new").hidden = n === 0;
    };
    state.broadcasts = new BroadcastPanel($("broadcasts-panel"), {
      stationName,
      onCircles: (active) => state.overlays.showBroadcasts(active),
      onFocus: (b) => state.overlays.focusBroadcast(b),
    });
  }
  document.querySelector("[role=tablist]").hidden = !state.intel && !state.broadcasts;
  $("tab-intel").hidden = !state.intel;
  $("tab-broadcasts").hidden = !state.broadcasts;
  $("broadcast-new").hidden = !mayBroadcast();
  $("broadcast-new").onclick = () => openBroadcast(state.map.centre(), broadcastSent);
  const tabs = [...document.querySelectorAll("[role=tab]")];
  for (const tab of tabs) tab.onclick = () => showTab(tab.dataset.tab);
  document.querySelector("[role=tablist]").onkeydown = (e) => {
    if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
    const shown = tabs.filter((tab) => !tab.hidden);
    const at = shown.findIndex((tab) => tab.dataset.tab === state.tab);
    const next = shown[(at + (e.key === "ArrowRight" ? 1 : shown.length - 1)) % shown.length];
    showTab(next.dataset.tab);
    next.focus();
  };
}

async function reloadFieldPanels() {
  await Promise.all([state.intel?.load(), state.broadcasts?.load()]);
}

function showTab(name) {
  if ((name === "intel" && !state.intel) || (name === "broadcasts" && !state.broadcasts)) return;
  state.tab = name;
  $("console").dataset.tab = name;
  for (const tab of document.querySelectorAll("[role=tab]")) {
    const on = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", on ? "true" : "false");
    tab.tabIndex = on ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !on;
  }
  const help = { incidents: "keys.help", intel: "keys.helpIntel", broadcasts: "keys.helpBroadcasts" }[name];
  document.querySelector(".keys-help").textContent = t(help) + (state.reports ? t("keys.toReports") : "");
  document.querySelector(".map-hint").textContent = t(name === "broadcasts" ? "broadcast.hint" : "create.hint");
  document.body.classList.toggle("can-create", name === "broadcasts" ? mayBroadcast() : api.may("incidents:write"));
  if (name !== "intel") state.overlays?.showIntel(null);
}

function fieldKey(e) {
  const panel = state.tab === "intel" ? state.intel : state.broadcasts;
  const keys = {
    j: () => panel.move(1),
    k: () => panel.move(-1),
    u: () => state.tab === "intel" && state.intel.verdictKey(0),
    x: () => state.tab === "intel" && state.intel.verdictKey(1),
    o: () => state.tab === "intel" && state.intel.verdictKey(2),
    n: () => state.tab === "broadcasts" && mayBroadcast() && openBroadcast(state.map.centre(), broadcastSent),
  };
  if (keys[e.key]) {
    e.preventDefault();
    keys[e.key]();
  }
}

// Reports swap in for the map and lists (r, or the buttons in the top bar).
function setUpReports() {
  if (state.reports || !mayReadReports()) return;
  state.reports = new ReportsView($("reports-view"), {
    onIncident: (id) => {
      showView("dispatch");
      state.queue.select(id, true);
    },
  });
  $("views").hidden = false;
  for (const button of $("views").querySelectorAll("button")) button.onclick = () => showView(button.dataset.view);
  showTab(state.tab); // the key help now mentions r
}

function showView(name) {
  state.view = name;
  $("console").hidden = name !== "dispatch";
  $("reports-view").hidden = name !== "reports";
  for (const button of $("views").querySelectorAll("button")) {
    button.setAttribute("aria-pressed", button.dataset.view === name ? "true" : "false");
  }
  if (name === "reports") {
    document.querySelector(".keys-help").textContent = t("keys.helpReports");
    state.reports.show();
  } else {
    state.map.map.invalidateSize(); // it was measured while hidden
    showTab(state.tab);
  }
}

function reportsKey(e, typing) {
  if (typing) {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  if (e.key === "r") showView("dispatch");
  else if (!state.reports.key(e)) return;
  e.preventDefault();
}

async function broadcastSent(broadcast) {
  await state.broadcasts.load();
  state.broadcasts.select(broadcast.id);
}

function tick() {
  const now = Date.now();
  $("clock").textContent = `${clockTime(new Date(now).toISOString())} ${zoneName()}`;
  state.queue?.tick(now);
  state.detail?.tick(now);
  state.intel?.tick(now);
  state.broadcasts?.tick(now);
}

function rerender() {
  state.queue?.render();
  state.detail?.render();
  state.intel?.render();
  state.broadcasts?.render();
  state.reports?.render();
  showTab(state.tab);
  if (state.view === "reports") showView("reports");
  if (state.map) legend($("legend"));
  if (api.me()) $("who").textContent = t("who.signedIn", { name: api.me().name, role: term("role", api.me().role) });
  const pill = $("live");
  pill.textContent = t(pill.dataset.i18n);
  tick();
}

function signOut() {
  state.events?.stop();
  state.positions?.stop();
  api.signOut();
  location.reload();
}

start();
