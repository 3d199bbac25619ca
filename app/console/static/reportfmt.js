// Report figures in human units: seconds as "1m 05s", rates as percentages, minutes gained
// with one decimal, and an em dash wherever the API has no figure (null).
import { t } from "./i18n.js";

export const NONE = "—";

const pad = (n) => String(n).padStart(2, "0");

export function duration(s) {
  if (s === null || s === undefined) return NONE;
  const whole = Math.round(s);
  if (whole < 60) return t("dur.s", { s: whole });
  if (whole < 3600) return t("dur.ms", { m: Math.floor(whole / 60), s: pad(whole % 60) });
  return t("dur.hm", { h: Math.floor(whole / 3600), m: pad(Math.floor((whole % 3600) / 60)) });
}

export function percent(rate) {
  if (rate === null || rate === undefined) return NONE;
  return `${Number((rate * 100).toFixed(1))}%`;
}

export function minutes(m) {
  if (m === null || m === undefined) return NONE;
  return t("minutes", { n: Number(m.toFixed(1)) });
}

// A message with a singular form under `<key>.one`, for n = 1.
export function plural(key, n, values = {}) {
  return t(n === 1 ? `${key}.one` : key, { n, ...values });
}

export function count(n) {
  return n === null || n === undefined ? NONE : String(n);
}

// A response-row field, formatted by what it measures.
export function figure(field, value) {
  if (field.endsWith("_rate")) return percent(value);
  if (/_s_p\d+$/.test(field)) return duration(value);
  if (field.startsWith("minutes_")) return minutes(value);
  return count(value);
}

// "2026-11-05" → "11-05": day labels on a chart's axis.
export function shortDay(day) {
  return day.slice(5);
}

// Query parameters, leaving out the empty ones (the API's defaults apply).
export function query(params) {
  const out = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== "" && value !== null && value !== undefined) out.set(name, String(value));
  }
  return out.toString();
}
