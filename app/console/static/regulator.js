// The regulator's view of the security companies: licence and certificate warnings first,
// then one row per company — licence state, headcount, turnover, response figures and the
// supervision record (commendations, complaints, points) over the period.
import * as api from "./api.js";
import { el } from "./dom.js";
import { applyTranslations, t } from "./i18n.js";
import { count, duration, minutes, percent, plural } from "./reportfmt.js";
import "./supervision-i18n.js";

export class CompaniesPage {
  constructor(root, view) {
    this.root = root;
    this.view = view;
    this.stale = true;
    this.seq = 0;
    this.report = null;
    this.warnings = el("ul", { class: "warnings", "aria-labelledby": "companies-warnings" });
    this.count = el("p", { class: "queue-count report-count", "aria-live": "polite" });
    this.table = el("table", { class: "report-table companies", "aria-labelledby": "companies-title" });
    this.root.replaceChildren(
      el("section", { class: "warnings-box" },
        el("h3", { id: "companies-warnings", "data-i18n": "co.warnings" }), this.warnings),
      el("h3", { id: "companies-title", class: "table-title", "data-i18n": "co.title" }),
      this.count,
      el("div", { class: "table-wrap" }, this.table),
    );
    applyTranslations(this.root);
  }

  async load() {
    const seq = ++this.seq;
    const report = await api.get(`/api/v1/reports/companies?${this.view.query()}`);
    if (seq !== this.seq) return;
    this.report = report;
    this.view.learnPeriod(report);
    this.render();
  }

  render() {
    if (!this.report) return;
    const { items } = this.report;
    this.count.textContent = plural("co.count", items.length, { from: this.report.from, to: this.report.to });
    const warnings = items.flatMap((c) => warningsOf(c));
    warnings.sort((a, b) => a.rank - b.rank || a.days - b.days);
    this.warnings.replaceChildren(
      ...(warnings.length
        ? warnings.map((w) => el("li", { class: `warning ${w.level}` }, el("span", { class: "warning-mark", "aria-hidden": "true", text: w.level === "expired" ? "✖" : "▲" }), w.text))
        : [el("li", { class: "warning none", text: t("co.noWarnings") })]),
    );
    this.table.replaceChildren(this.head(), el("tbody", {}, items.length
      ? items.map((c) => this.row(c))
      : el("tr", {}, el("td", { colspan: 16, class: "queue-empty", text: t("co.empty") }))));
  }

  head() {
    const th = (key, attrs = {}) => el("th", { scope: "col", ...attrs, text: t(key) });
    const groups = [
      ["co.col.guards", 3], ["co.col.certs", 2], ["co.col.response", 4], ["co.col.supervision", 3],
    ];
    return el("thead", {},
      el("tr", {},
        th("co.col.company", { rowspan: 2, class: "name" }),
        th("co.col.licence", { rowspan: 2 }),
        groups.slice(0, 2).map(([key, n]) => th(key, { colspan: n, scope: "colgroup", class: "group" })),
        th("co.col.turnover", { rowspan: 2, class: "num" }),
        groups.slice(2).map(([key, n]) => th(key, { colspan: n, scope: "colgroup", class: "group" })),
      ),
      el("tr", {},
        ["active", "suspended", "left", "certExpiring", "certExpired", "incidents", "acceptance", "onScene",
          "ahead", "commendations", "complaints", "points"].map((c) => th(`co.col.${c}`, { title: t(`co.title.${c}`), class: "num" })),
      ),
    );
  }

  row(c) {
    const k = c.kpis ?? {};
    const num = (text, extra = "") => el("td", { class: `num ${extra}`, text });
    const warnIf = (n, level) => (n > 0 ? level : "");
    return el("tr", { class: `licence-${c.licence_state}`, "data-id": c.id },
      el("th", { scope: "row", class: "name" },
        el("button", { type: "button", class: "link", title: t("report.drill", { name: c.name }),
          onclick: () => this.view.drillDown({ company_id: c.id }) }, c.name),
        el("span", { class: "sub", text: `${c.licence_no}${c.status === "active" ? "" : ` · ${t(`co.status.${c.status}`)}`}` })),
      el("td", { class: `licence ${c.licence_state}` }, licenceText(c),
        el("span", { class: "sub", text: c.licence_expires_on })),
      num(count(c.guards?.active)),
      num(count(c.guards?.suspended)),
      num(count(c.guards?.left)),
      num(count(c.certificates_expiring), warnIf(c.certificates_expiring, "expiring")),
      num(count(c.certificates_expired), warnIf(c.certificates_expired, "expired")),
      el("td", { class: "num" }, percent(c.turnover?.rate),
        el("span", { class: "sub", text: t("co.turnoverDetail", {
          departures: c.turnover?.departures ?? 0, average: c.turnover?.average_headcount ?? 0,
        }) })),
      num(count(k.incidents)),
      num(percent(k.acceptance_rate)),
      num(duration(k.on_scene_s_p50)),
      el("td", { class: "num" }, count(k.early_disposals),
        el("span", { class: "sub", text: minutes(k.minutes_gained_total) })),
      num(count(c.commendations)),
      num(count(c.complaints), warnIf(c.complaints, "expiring")),
      num(count(c.points)),
    );
  }
}

function licenceText(c) {
  const n = c.licence_days_left;
  if (c.licence_state === "expired") return plural("licence.expired", -n);
  if (n === 0) return t("licence.today");
  return plural(`licence.${c.licence_state}`, n);
}

// Expired before expiring, licences before certificates, the soonest licence first.
function warningsOf(c) {
  const out = [];
  const days = c.licence_days_left;
  const values = { name: c.name, no: c.licence_no, date: c.licence_expires_on };
  if (c.licence_state === "expired") {
    out.push({ level: "expired", rank: 0, days, text: plural("co.warn.licenceExpired", -days, values) });
  } else if (c.licence_state === "expiring") {
    const text = days === 0 ? t("co.warn.licenceToday", values) : plural("co.warn.licenceExpiring", days, values);
    out.push({ level: "expiring", rank: 2, days, text });
  }
  if (c.certificates_expired > 0) {
    out.push({ level: "expired", rank: 1, days: 0, text: plural("co.warn.certExpired", c.certificates_expired, { name: c.name }) });
  }
  if (c.certificates_expiring > 0) {
    out.push({ level: "expiring", rank: 3, days: 0, text: plural("co.warn.certExpiring", c.certificates_expiring, { name: c.name }) });
  }
  return out;
}
