// The live map: precincts, police units, incidents by priority, guards by state. Guards are
// drawn on one canvas (thousands of points stay smooth) and their updates are applied once
// per animation frame, however many arrive in between.
import { el } from "./dom.js";
import { t, term } from "./i18n.js";

const L = window.L;

export const GUARD_COLOURS = {
  available: "#3ddc84",
  offered: "#ffca28",
  en_route: "#42a5f5",
  on_scene: "#ce93d8",
  stale: "#8a8f98",
  offline: "#5c6169",
  unavailable: "#5c6169",
};
const PRIORITY_COLOURS = { 1: "#ff3b30", 2: "#ff9500", 3: "#ffd60a", 4: "#8e9aaf" };
const OPEN = new Set(["new", "dispatching", "assigned", "on_scene"]);
// Guards who cannot be sent now: drawn hollow and beneath the ones who can.
const QUIET = new Set(["stale", "offline", "unavailable"]);

export class LiveMap {
  constructor(container, config, handlers) {
    this.handlers = handlers;
    this.map = L.map(container, {
      preferCanvas: true,
      zoomControl: true,
      attributionControl: Boolean(config.tile_url),
      keyboard: false, // the console's own shortcuts use the keyboard
    }).setView([39.12, 117.2], 12);
    if (config.tile_url) {
      L.tileLayer(config.tile_url, { attribution: config.tile_attribution, maxZoom: 19 }).addTo(
        this.map,
      );
    }
    L.control.scale({ metric: true, imperial: false, position: "bottomleft" }).addTo(this.map);
    this.guardCanvas = L.canvas({ padding: 0.2 });
    this.precincts = L.layerGroup().addTo(this.map);
    this.grid = L.layerGroup().addTo(this.map);
    this.units = L.layerGroup().addTo(this.map);
    this.guards = L.layerGroup().addTo(this.map);
    this.incidentLayer = L.layerGroup().addTo(this.map);
    this.guardMarkers = new Map();
    this.incidentMarkers = new Map();
    this.pending = new Map();
    this.frame = 0;
    this.cursor = this.addCursorReadout();
    this.map.on("click", (e) => handlers.onClick?.(e.latlng));
    this.map.on("moveend", () => {
      this.drawGrid();
      handlers.onViewChange?.(this.bbox());
    });
    this.drawGrid();
  }

  bbox() {
    const b = this.map.getBounds().pad(0.25);
    const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
    return [
      clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90),
      clamp(b.getEast(), -180, 180), clamp(b.getNorth(), -90, 90),
    ];
  }

  centre() {
    return this.map.getCenter();
  }

  addCursorReadout() {
    const Readout = L.Control.extend({
      onAdd: () => el("div", { class: "map-readout", "aria-live": "off" }),
    });
    const control = new Readout({ position: "bottomright" }).addTo(this.map);
    const node = control.getContainer();
    this.map.on("mousemove", (e) => {
      node.textContent = `${e.latlng.lat.toFixed(5)}, ${e.latlng.lng.toFixed(5)}`;
    });
    return node;
  }

  // A coordinate grid, so the map reads as a map with no tiles at all.
  drawGrid() {
    this.grid.clearLayers();
    const b = this.map.getBounds();
    const span = Math.max(b.getNorth() - b.getSouth(), b.getEast() - b.getWest());
    const step = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10].find(
      (s) => span / s <= 12,
    ) ?? 20;
    const style = { color: "#3a4658", weight: 1, opacity: 0.6, interactive: false };
    const digits = step < 0.01 ? 3 : step < 1 ? 2 : 0;
    for (let lat = Math.ceil(b.getSouth() / step) * step; lat <= b.getNorth(); lat += step) {
      L.polyline([[lat, b.getWest()], [lat, b.getEast()]], style).addTo(this.grid);
      L.tooltip({ permanent: true, direction: "right", className: "grid-label", offset: [0, 0] })
        .setLatLng([lat, b.getWest()]).setContent(`${lat.toFixed(digits)}°`).addTo(this.grid);
    }
    for (let lon = Math.ceil(b.getWest() / step) * step; lon <= b.getEast(); lon += step) {
      L.polyline([[b.getSouth(), lon], [b.getNorth(), lon]], style).addTo(this.grid);
      L.tooltip({ permanent: true, direction: "top", className: "grid-label", offset: [0, 0] })
        .setLatLng([b.getSouth(), lon]).setContent(`${lon.toFixed(digits)}°`).addTo(this.grid);
    }
  }

  setPrecincts(stations) {
    this.precincts.clearLayers();
    const all = [];
    for (const station of stations) {
      const layer = L.geoJSON(station.jurisdiction, {
        style: { color: "#4f8cc9", weight: 2, fillColor: "#4f8cc9", fillOpacity: 0.06 },
        interactive: false,
      });
      layer.addTo(this.precincts);
      const centre = layer.getBounds().getCenter();
      L.tooltip({ permanent: true, direction: "center", className: "precinct-label" })
        .setLatLng(centre).setContent(el("span", { text: station.name })).addTo(this.precincts);
      all.push(layer.getBounds());
    }
    if (all.length) {
      this.map.fitBounds(all.reduce((acc, b) => acc.extend(b), L.latLngBounds(all[0])));
    }
  }

  setUnits(units) {
    this.units.clearLayers();
    for (const unit of units) {
      if (!unit.location) continue;
      const icon = L.divIcon({
        className: `unit-icon unit-${unit.status}`,
        html: "<i></i>", // the diamond is the inner element: Leaflet owns the outer transform
        iconSize: [14, 14],
      });
      L.marker([unit.location.lat, unit.location.lon], {
        icon,
        keyboard: false,
        title: t("unit.label", { call_sign: unit.call_sign, status: unit.status }),
      }).addTo(this.units);
    }
  }

  // Incidents: open ones only, coloured by priority; unstaffed P1/P2 pulse.
  showIncident(incident, selected) {
    const old = this.incidentMarkers.get(incident.id);
    if (old) old.remove();
    if (!OPEN.has(incident.status)) {
      this.incidentMarkers.delete(incident.id);
      return;
    }
    const urgent = incident.unstaffed && incident.priority <= 2;
    const icon = L.divIcon({
      className: [
        "incident-icon", `p${incident.priority}`, urgent ? "unstaffed" : "",
        selected ? "selected" : "",
      ].join(" "),
      html: "",
      iconSize: [22, 22],
    });
    const marker = L.marker([incident.location.lat, incident.location.lon], {
      icon,
      keyboard: false,
      zIndexOffset: 1000 + (5 - incident.priority) * 100,
      title: `P${incident.priority} ${term("category", incident.category)} — ${incident.description}`,
    });
    marker.on("click", (e) => {
      L.DomEvent.stopPropagation(e);
      this.handlers.onIncidentClick?.(incident.id);
    });
    marker.addTo(this.incidentLayer);
    this.incidentMarkers.set(incident.id, marker);
  }

  dropIncident(id) {
    this.incidentMarkers.get(id)?.remove();
    this.incidentMarkers.delete(id);
  }

  focus(lat, lon) {
    this.map.panTo([lat, lon]);
  }

  // Guards: replace everything (a snapshot) or queue changes for the next frame.
  resetGuards(items) {
    // A snapshot is the whole truth for the view: drop who is not in it, update the rest
    // in place (no flicker when the view moves).
    const present = new Set(items.map((item) => item.guard_id));
    for (const [id, marker] of this.guardMarkers) {
      if (!present.has(id)) {
        marker.remove();
        this.guardMarkers.delete(id);
      }
    }
    this.pending.clear();
    this.queueGuards(items, []);
  }

  queueGuards(items, gone) {
    for (const item of items) this.pending.set(item.guard_id, item);
    for (const id of gone) this.pending.set(id, null);
    if (!this.frame) this.frame = requestAnimationFrame(() => this.flushGuards());
  }

  flushGuards() {
    this.frame = 0;
    for (const [id, item] of this.pending) {
      const marker = this.guardMarkers.get(id);
      if (item === null) {
        marker?.remove();
        this.guardMarkers.delete(id);
        continue;
      }
      const latlng = [item.position.lat, item.position.lon];
      const style = guardStyle(item.state);
      if (marker) {
        marker.setLatLng(latlng);
        if (marker.options.state !== item.state) {
          marker.setStyle(style);
          marker.options.state = item.state;
          if (!QUIET.has(item.state)) marker.bringToFront();
        }
        if (item.name) marker.options.label = `${item.name} ${item.badge_no ?? ""}`;
        marker.setTooltipContent(guardLabel(marker.options.label, item.state));
      } else {
        const created = L.circleMarker(latlng, {
          ...style, renderer: this.guardCanvas, state: item.state,
          label: `${item.name ?? id} ${item.badge_no ?? ""}`,
        });
        created.bindTooltip(guardLabel(created.options.label, item.state));
        created.addTo(this.guards);
        if (QUIET.has(item.state)) created.bringToBack();
        this.guardMarkers.set(id, created);
      }
    }
    this.pending.clear();
  }

  guardCount() {
    return this.guardMarkers.size;
  }
}

function guardStyle(state) {
  const colour = GUARD_COLOURS[state] ?? GUARD_COLOURS.unavailable;
  const hollow = QUIET.has(state);
  return {
    radius: hollow ? 4 : 6,
    color: hollow ? colour : "#0b0f14",
    weight: hollow ? 1.5 : 1.5,
    dashArray: state === "offline" ? "2 3" : null,
    fillColor: colour,
    fillOpacity: hollow ? 0 : 1,
    bubblingMouseEvents: false, // a click on a guard is not a click on the map (no new incident)
  };
}

// Leaflet reads a string as HTML: names typed by people go in as text nodes.
function guardLabel(label, state) {
  return el("span", { text: `${label} — ${term("guardState", state)}` });
}

export function legend(container) {
  container.replaceChildren(
    el("span", { class: "legend-title", text: t("legend.title") }),
    ...Object.entries(GUARD_COLOURS)
      .filter(([state]) => state !== "unavailable")
      .map(([state]) =>
        el("span", { class: `legend-item state-${state}` }, el("i", { "aria-hidden": "true" }),
          term("guardState", state)),
      ),
    el("span", { class: "legend-item unit" }, el("i", { "aria-hidden": "true" }), t("legend.unit")),
  );
}
