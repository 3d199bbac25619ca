// What the field side adds to the live map: active broadcasts as dashed circles, and the
// intel report the operator is looking at as a marker.
import { el } from "./dom.js";
import { t } from "./i18n.js";

const L = window.L;
const METRES_PER_DEGREE = 111_195; // of latitude
const BROADCAST_STYLE = {
  color: "#4dd0e1", weight: 2, dashArray: "6 6", fillColor: "#4dd0e1", fillOpacity: 0.07,
  interactive: false,
};

export class FieldOverlays {
  constructor(liveMap) {
    this.liveMap = liveMap;
    this.circles = L.layerGroup().addTo(liveMap.map);
    this.intel = L.layerGroup().addTo(liveMap.map);
    this.broadcastIds = [];
  }

  showBroadcasts(active) {
    this.circles.clearLayers();
    this.broadcastIds = active.map((b) => b.id);
    for (const b of active) {
      const centre = [b.location.lat, b.location.lon];
      L.circle(centre, { ...BROADCAST_STYLE, radius: b.radius_m, broadcastId: b.id }).addTo(this.circles);
      // On the circle's northern edge, clear of the guards and incidents inside; a node,
      // not a string, since Leaflet would read a string as HTML.
      const north = [b.location.lat + b.radius_m / METRES_PER_DEGREE, b.location.lon];
      L.tooltip({ permanent: true, direction: "top", className: "broadcast-label" })
        .setLatLng(north).setContent(el("span", { text: shorten(b.text) })).addTo(this.circles);
    }
  }

  focusBroadcast(b) {
    const bounds = L.latLng(b.location.lat, b.location.lon).toBounds(b.radius_m * 2.4);
    this.liveMap.map.fitBounds(bounds, { animate: false });
  }

  showIntel(report) {
    this.intel.clearLayers();
    if (!report) return;
    const marker = L.marker([report.location.lat, report.location.lon], {
      icon: L.divIcon({ className: "intel-icon", html: "", iconSize: [18, 18] }),
      keyboard: false,
      interactive: false,
      title: `${t("intel.marker")}: ${t(`subject.${report.subject}`)}`,
    });
    marker.addTo(this.intel);
    this.liveMap.focus(report.location.lat, report.location.lon);
  }
}

function shorten(text) {
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}
