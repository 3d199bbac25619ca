// The Reports view, swapped in for the map and lists: response figures, the regulator's view
// of the companies and a guard's record, over one period of local dates (both inclusive) in
// the service's time zone. Nothing here is live: a page loads when shown or when the period
// or its filters change.
import * as api from "./api.js";
import { el } from "./dom.js";
import { clockTime, zoneName } from "./format.js";
import { applyTranslations, t } from "./i18n.js";
import { GuardPage } from "./guardrecord.js";
import { CompaniesPage } from "./regulator.js";
import { errorText } from "./format.js";
import { query } from "./reportfmt.js";
import "./reports-i18n.js";
import { ResponsePage } from "./response.js";

const PAGES = ["response", "companies", "guard"];

export function mayReadReports() {
  return api.may("reports:read");
}

export class ReportsView {
  constructor(root, { onIncident }) {
    this.root = root;
    this.onIncident = onIncident; // (incident id) => void: show it in the dispatch view
    this.current = "response";
    this.back = null; // the page a guard's record was opened from (Esc returns there)
    this.companies = new Map();
    this.stations = new Map();
    this.listsLoaded = false;
    this.build();
    this.pages = {
      response: new ResponsePage(this.section("response"), this),
      companies: new CompaniesPage(this.section("companies"), this),
      guard: new GuardPage(this.section("guard"), this),
    };
  }

  build() {
    const tabs = PAGES.map((name, i) =>
      el("button", {
        type: "button", role: "tab", id: `rtab-${name}`, "data-page": name, "aria-controls": `report-${name}`,
        "aria-selected": name === this.current ? "true" : "false", tabindex: name === this.current ? "0" : "-1",
        "aria-keyshortcuts": String(i + 1), "data-i18n": `reports.tab.${name}`, onclick: () => this.showPage(name),
      }),
    );
    const tablist = el("div", { role: "tablist", class: "report-tabs", "data-i18n-aria": "reports.pages" }, tabs);
    tablist.onkeydown = (e) => {
      if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
      const at = PAGES.indexOf(this.current);
      const next = PAGES[(at + (e.key === "ArrowRight" ? 1 : PAGES.length - 1)) % PAGES.length];
      this.showPage(next);
      document.getElementById(`rtab-${next}`).focus();
    };
    this.period = el("form", { class: "period filters" },
      el("label", {}, el("span", { "data-i18n": "period.from" }), el("input", { type: "date", name: "from" })),
      el("label", {}, el("span", { "data-i18n": "period.to" }), el("input", { type: "date", name: "to" })),
      el("button", { type: "submit", class: "primary", "data-i18n": "period.refresh" }),
      el("span", { class: "period-note" }),
    );
    this.period.onsubmit = (e) => {
      e.preventDefault();
      this.periodChanged();
    };
    this.period.onchange = () => this.periodChanged();
    this.error = el("p", { class: "form-error", role: "alert", hidden: true });
    const sections = PAGES.map((name) =>
      el("section", {
        id: `report-${name}`, class: "report-page", role: "tabpanel", "aria-labelledby": `rtab-${name}`,
        hidden: name !== this.current,
      }),
    );
    this.root.replaceChildren(el("div", { class: "reports-head" }, tablist, this.period), this.error, ...sections);
    applyTranslations(this.root);
  }

  section(name) {
    return this.root.querySelector(`#report-${name}`);
  }

  // The period as query parameters, with a page's own filters; empty dates take the API's
  // default (the last 30 days), and the first answer fills the date fields.
  query(params = {}) {
    const { from, to } = this.period.elements;
    return query({ from: from.value, to: to.value, ...params });
  }

  learnPeriod(answer) {
    const { from, to } = this.period.elements;
    if (!from.value && answer.from) from.value = answer.from;
    if (!to.value && answer.to) to.value = answer.to;
    this.loadedAt = new Date().toISOString();
    this.renderNote();
  }

  renderNote() {
    if (!this.loadedAt) return;
    this.period.querySelector(".period-note").textContent = t("period.note", {
      zone: zoneName(), time: clockTime(this.loadedAt),
    });
  }

  showError(error) {
    this.error.textContent = error ? errorText(error) : "";
    this.error.hidden = !error;
  }

  periodChanged() {
    for (const page of Object.values(this.pages)) page.stale = true;
    this.load();
  }

  async show() {
    if (!this.listsLoaded) await this.loadLists();
    this.showPage(this.current);
  }

  async loadLists() {
    try {
      const [companies, stations] = await Promise.all([
        api.getAll("/api/v1/companies"),
        api.getAll("/api/v1/stations"),
      ]);
      this.companies = new Map(companies.map((c) => [c.id, c]));
      this.stations = new Map(stations.map((s) => [s.id, s]));
      this.listsLoaded = true;
      for (const page of Object.values(this.pages)) page.listsChanged?.();
    } catch (error) {
      this.showError(error);
    }
  }

  companyName(id) {
    return this.companies.get(id)?.name ?? id ?? "";
  }

  // A company manager's reports are forced to their own company: no choice to offer.
  ownCompany() {
    return api.me()?.role === "company_manager" ? api.me().company_id : null;
  }

  showPage(name) {
    this.current = name;
    for (const tab of this.root.querySelectorAll("[role=tab]")) {
      const on = tab.dataset.page === name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
    }
    for (const page of PAGES) this.section(page).hidden = page !== name;
    if (this.pages[name].stale) this.load();
  }

  async load() {
    const page = this.pages[this.current];
    page.stale = false;
    this.root.setAttribute("aria-busy", "true");
    try {
      await page.load();
      this.showError(null);
    } catch (error) {
      page.stale = true;
      this.showError(error);
    } finally {
      this.root.removeAttribute("aria-busy");
    }
  }

  openGuard(id) {
    if (this.current !== "guard") this.back = this.current;
    this.pages.guard.open(id);
    this.showPage("guard");
  }

  // The response report narrowed to one company or station, by guard.
  drillDown(filters) {
    this.pages.response.setFilters({ group_by: "guard", ...filters });
    this.showPage("response");
  }

  // Keys while the Reports view is shown; true when the key was this view's.
  key(e) {
    const page = { 1: "response", 2: "companies", 3: "guard" }[e.key];
    if (page) {
      this.showPage(page);
      return true;
    }
    if (e.key === "Escape" && this.current === "guard" && this.back) {
      this.showPage(this.back);
      this.back = null;
      return true;
    }
    return false;
  }

  render() {
    this.renderNote();
    for (const page of Object.values(this.pages)) page.render();
  }
}
