// Times in the service's configured time zone (storage is UTC), ages, distances.
import { ApiError } from "./api.js";
import { language, t } from "./i18n.js";

let zone = "Asia/Shanghai";
const formatters = new Map();

export function setTimeZone(name) {
  zone = name;
  formatters.clear();
}

function formatter(kind) {
  const key = `${language()}:${kind}`;
  if (!formatters.has(key)) {
    const options =
      kind === "time"
        ? { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }
        : {
            month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
            second: "2-digit", hourCycle: "h23",
          };
    const locale = language() === "zh" ? "zh-CN" : "en-GB";
    formatters.set(key, new Intl.DateTimeFormat(locale, { ...options, timeZone: zone }));
  }
  return formatters.get(key);
}

export function clockTime(iso) {
  return formatter("time").format(new Date(iso));
}

export function dateTime(iso) {
  return formatter("datetime").format(new Date(iso));
}

export function zoneName() {
  return zone;
}

// "3m" / "1h 05m": how long since `iso`, for live ages in the queue.
export function age(iso, now = Date.now()) {
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (s < 60) return t("ago.s", { n: s });
  if (s < 3600) return t("ago.m", { n: Math.floor(s / 60) });
  return t("ago.h", { n: Math.floor(s / 3600), m: String(Math.floor((s % 3600) / 60)).padStart(2, "0") });
}

export function secondsUntil(iso, now = Date.now()) {
  return Math.ceil((Date.parse(iso) - now) / 1000);
}

export function distance(m) {
  return m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(1)} km`;
}

export function eta(s) {
  return s < 90 ? `${Math.round(s)} s` : `${Math.round(s / 60)} min`;
}

// What went wrong, for the operator: the API's own message, or "can't reach the server".
export function errorText(error) {
  if (error instanceof ApiError) return t("error.generic", { message: error.message });
  return t("error.network");
}
