// The response report: one row per guard, company or station (offers, acceptance, how fast
// guards accept and reach the scene, how often they got there before the police), a CSV of
// the same rows, and two charts: the period day by day and a distribution.
import * as api from "./api.js";
import { dailyChart, histogram } from "./charts.js";
import { el } from "./dom.js";
import { applyTranslations, t } from "./i18n.js";
import { errorText } from "./format.js";
import { duration, figure, plural } from "./reportfmt.js";

// Column groups of the table after the name and incidents columns: [group, fields].
const GROUPS = [
  ["offers", ["offers", "accepted", "declines", "expiries", "acceptance_rate"]],
  ["accept", ["accept_s_p50", "accept_s_p90"]],
  ["onScene", ["on_scene_s_p50", "on_scene_s_p90"]],
  ["ahead", ["early_disposals", "minutes_gained_p50", "minutes_gained_total"]],
  ["police", ["escalations", "handovers"]],
];
const MEASURES = ["on_scene_s", "accept_s", "minutes_gained"];

export class ResponsePage {
  constructor(root, view) {
    this.root = root;
    this.view = view;
    this.stale = true;
    this.seq = 0;
    this.report = null;
    this.days = null;
    this.distribution = null;
    this.build();
  }

  build() {
    const select = (name, key, options) =>
      el("label", {}, el("span", { "data-i18n": key }), el("select", { name }, options));
    this.form = el("form", { class: "filters report-filters" },
      select("group_by", "filter.groupBy", ["guard", "company", "station"].map((g) =>
        el("option", { value: g, "data-i18n": `group.${g}` }))),
      select("company_id", "group.company", [el("option", { value: "", "data-i18n": "filter.any" })]),
      select("station_id", "group.station", [el("option", { value: "", "data-i18n": "filter.any" })]),
      el("span", { class: "spacer" }),
      el("button", { type: "button", class: "csv", "data-i18n": "report.csv", onclick: () => this.downloadCsv() }),
    );
    this.form.onchange = () => this.view.load();
    this.form.onsubmit = (e) => e.preventDefault();
    this.csvError = el("p", { class: "form-error", role: "alert", hidden: true });
    this.measure = el("select", { name: "measure", onchange: () => this.loadDistribution() },
      MEASURES.map((m) => el("option", { value: m, "data-i18n": `measure.${m}` })));
    this.dailyBox = el("div", { class: "chart-box" });
    this.histBox = el("div", { class: "chart-box" });
    const charts = el("div", { class: "charts" },
      el("figure", { class: "chart" },
        el("figcaption", {}, el("h3", { "data-i18n": "chart.daily" })), this.dailyBox),
      el("figure", { class: "chart" },
        el("figcaption", {}, el("h3", { "data-i18n": "chart.distribution" }),
          el("label", { class: "inline" }, el("span", { "data-i18n": "chart.measure" }), this.measure)),
        this.histBox),
    );
    this.count = el("p", { class: "queue-count report-count", "aria-live": "polite" });
    this.table = el("table", { class: "report-table", "aria-labelledby": "rtab-response" });
    this.root.replaceChildren(this.form, this.csvError, charts, this.count,
      el("div", { class: "table-wrap" }, this.table));
    applyTranslations(this.root);
  }

  listsChanged() {
    const fill = (name, entries) => {
      const node = this.form.elements[name];
      const chosen = node.value;
      node.replaceChildren(node.options[0], ...entries.map(([id, label]) => new Option(label, id)));
      node.value = chosen;
    };
    const own = this.view.ownCompany();
    const companies = [...this.view.companies.values()].filter((c) => !own || c.id === own);
    fill("company_id", companies.map((c) => [c.id, c.name]));
    fill("station_id", [...this.view.stations.values()].map((s) => [s.id, s.name]));
    if (own) {
      this.form.elements.company_id.value = own;
      this.form.elements.company_id.disabled = true;
    }
  }

  filters() {
    const f = this.form.elements;
    return { company_id: f.company_id.value, station_id: f.station_id.value };
  }

  setFilters({ group_by, company_id = "", station_id = "" }) {
    const f = this.form.elements;
    f.group_by.value = group_by;
    if (!f.company_id.disabled) f.company_id.value = company_id;
    f.station_id.value = station_id;
    this.stale = true;
  }

  async load() {
    const seq = ++this.seq;
    const groupBy = this.form.elements.group_by.value;
    const [report, days, distribution] = await Promise.all([
      api.get(`/api/v1/reports/response?${this.view.query({ group_by: groupBy, ...this.filters() })}`),
      api.get(`/api/v1/reports/response?${this.view.query({ group_by: "day", ...this.filters() })}`),
      api.get(`/api/v1/reports/response/distribution?${this.view.query({ measure: this.measure.value, ...this.filters() })}`),
    ]);
    if (seq !== this.seq) return;
    Object.assign(this, { report, days, distribution });
    this.view.learnPeriod(report);
    this.render();
  }

  async loadDistribution() {
    try {
      this.distribution = await api.get(
        `/api/v1/reports/response/distribution?${this.view.query({ measure: this.measure.value, ...this.filters() })}`,
      );
      this.renderHistogram();
    } catch (error) {
      this.view.showError(error);
    }
  }

  render() {
    if (!this.report) return;
    const { report } = this;
    this.count.textContent = plural("report.rows", report.items.length, {
      group: t(`group.${report.group_by}`), from: report.from, to: report.to,
    });
    this.table.replaceChildren(this.head(report.group_by), this.body(report), this.foot(report.total));
    this.renderDaily();
    this.renderHistogram();
  }

  head(groupBy) {
    const th = (key, attrs = {}) => el("th", { scope: "col", ...attrs, text: t(key) });
    return el("thead", {},
      el("tr", {},
        th(`group.${groupBy}`, { rowspan: 2, class: "name" }),
        th("col.incidents", { rowspan: 2, class: "num" }),
        GROUPS.map(([group, fields]) => th(`col.group.${group}`, { colspan: fields.length, scope: "colgroup", class: "group" }))),
      el("tr", {}, GROUPS.flatMap(([, fields]) => fields.map((f) => th(`col.${f}`, { title: t(`col.title.${f}`), class: "num" })))),
    );
  }

  body(report) {
    if (!report.items.length) {
      return el("tbody", {}, el("tr", {}, el("td", { colspan: 17, class: "queue-empty", text: t("report.empty") })));
    }
    return el("tbody", {}, report.items.map((row) => this.row(row, report.group_by)));
  }

  row(row, groupBy) {
    return el("tr", { "data-key": row.key ?? "" },
      el("th", { scope: "row", class: "name" }, this.nameCell(row, groupBy)),
      this.cells(row),
    );
  }

  cells(row) {
    const fields = ["incidents", ...GROUPS.flatMap(([, f]) => f)];
    return fields.map((f) => el("td", { class: `num ${f}`, text: figure(f, row[f]) }));
  }

  // A guard opens their record; a company or station narrows the report to its guards.
  nameCell(row, groupBy) {
    if (row.key === null) return t("report.noStation");
    if (groupBy === "guard") {
      return el("button", { type: "button", class: "link", title: t("report.openGuard", { name: row.name }),
        onclick: () => this.view.openGuard(row.key) }, row.name);
    }
    const filter = groupBy === "company" ? { company_id: row.key } : { station_id: row.key };
    return el("button", { type: "button", class: "link", title: t("report.drill", { name: row.name }),
      onclick: () => this.view.drillDown(filter) }, row.name);
  }

  foot(total) {
    return el("tfoot", {}, el("tr", {}, el("th", { scope: "row", class: "name", text: t("report.total") }), this.cells(total)));
  }

  renderDaily() {
    const days = this.days?.items ?? [];
    const total = this.days?.total;
    const title = t("chart.daily");
    this.dailyBox.replaceChildren(dailyChart(days, {
      summary: t("chart.dailySummary", {
        title, from: this.days?.from ?? "", to: this.days?.to ?? "", incidents: total?.incidents ?? 0,
        early: total?.early_disposals ?? 0, median: duration(total?.on_scene_s_p50 ?? null),
      }),
      incidents: t("chart.incidents"), early: t("chart.early"), onScene: t("chart.onScene"),
      yLeft: t("chart.yCount"), yRight: t("chart.yMinutes"), x: t("chart.xDay"), noData: t("chart.noData"),
      dayTitle: (d) => t("chart.dayTitle", {
        day: d.key, incidents: d.incidents, early: d.early_disposals, median: duration(d.on_scene_s_p50),
      }),
    }));
  }

  renderHistogram() {
    const dist = this.distribution;
    if (!dist) return;
    const bucket = (b) => bucketLabel(b, dist.unit);
    const n = dist.buckets.reduce((sum, b) => sum + b.count, 0);
    const top = dist.buckets.reduce((best, b) => (b.count > (best?.count ?? 0) ? b : best), null);
    const title = t(`measure.${dist.measure}`);
    this.histBox.replaceChildren(histogram(dist.buckets, {
      summary: n ? t("chart.distSummary", { title, n, bucket: bucket(top) }) : `${title}: ${t("chart.noData")}`,
      yLeft: t(`dist.y.${dist.measure}`), x: t(`dist.x.${dist.unit}`, { measure: title }),
      noData: t("chart.noData"), bucket,
    }));
  }

  // CSV through the API with the bearer token in a header (never in the URL), saved from a blob.
  async downloadCsv() {
    const groupBy = this.form.elements.group_by.value;
    const path = `/api/v1/reports/response?${this.view.query({ group_by: groupBy, ...this.filters() })}`;
    const fetchCsv = () => fetch(path, {
      headers: { Accept: "text/csv", Authorization: `Bearer ${api.currentToken()}` },
    });
    this.csvError.hidden = true;
    try {
      let response = await fetchCsv();
      if (response.status === 401) {
        await api.loadMe(); // signs in again through the dialog, as every other request does
        response = await fetchCsv();
      }
      if (!response.ok) throw new api.ApiError(response.status, await response.json().catch(() => null));
      const named = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") ?? "");
      const url = URL.createObjectURL(await response.blob());
      const link = el("a", { href: url, download: named ? named[1] : `response-${groupBy}.csv`, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (error) {
      this.csvError.textContent = errorText(error);
      this.csvError.hidden = false;
    }
  }
}

// "0–15s", "30s–1m", "1–2m", "30m+" for seconds; "0–1", "60+" for minutes (the axis names
// the unit): a unit is written once when both edges share it.
function bucketLabel(b, unit) {
  const parts = (v) => (unit === "s" && v >= 60 && v % 60 === 0 ? [v / 60, "edge.m"] : [v, unit === "s" ? "edge.s" : ""]);
  const write = ([n, key]) => (key ? t(key, { n }) : String(n));
  const [lower, lowerUnit] = parts(b.lower);
  if (b.upper === null) return `${write([lower, lowerUnit])}+`;
  const upper = parts(b.upper);
  const first = lower === 0 || lowerUnit === upper[1] ? String(lower) : write([lower, lowerUnit]);
  return `${first}–${write(upper)}`;
}
