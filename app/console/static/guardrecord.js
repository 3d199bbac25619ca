// A guard's record: who they are, their response figures over the period, their recognition
// points (all-time total, the period's, and the ledger entry by entry) and a leaderboard of
// their company or a station to set them against.
import * as api from "./api.js";
import { el } from "./dom.js";
import { dateTime } from "./format.js";
import { applyTranslations, t } from "./i18n.js";
import { count, duration, minutes, percent, plural } from "./reportfmt.js";
import "./supervision-i18n.js";

const LEDGER_PAGE = 50;

export class GuardPage {
  constructor(root, view) {
    this.root = root;
    this.view = view;
    this.stale = true;
    this.seq = 0;
    this.guardId = null;
    this.guard = null;
    this.kpis = null;
    this.points = null; // {total, period_total, items, next_cursor}
    this.board = null;
    this.scope = ""; // "", "company:<id>" or "station:<id>"
    this.build();
  }

  build() {
    this.openForm = el("form", { class: "filters guard-open" },
      el("label", {}, el("span", { "data-i18n": "guard.id" }), el("input", { name: "guard", size: 28, autocomplete: "off" })),
      el("button", { type: "submit", "data-i18n": "guard.open" }),
    );
    this.openForm.onsubmit = (e) => {
      e.preventDefault();
      const id = this.openForm.elements.guard.value.trim();
      if (id) this.view.openGuard(id);
    };
    this.summary = el("div", { class: "guard-summary", "aria-live": "polite" });
    this.ledger = el("div", { class: "ledger" });
    this.scopeSelect = el("select", { name: "scope", onchange: () => this.changeScope() });
    this.boardBox = el("div", { class: "board" });
    this.columns = el("div", { class: "guard-columns no-guard" },
      el("section", { class: "report-card ledger-card", "aria-labelledby": "ledger-title" },
        el("h3", { id: "ledger-title", "data-i18n": "guard.ledger" }), this.ledger),
      el("section", { class: "report-card", "aria-labelledby": "board-title" },
        el("div", { class: "card-head" }, el("h3", { id: "board-title", "data-i18n": "board.title" }),
          el("label", { class: "inline" }, el("span", { "data-i18n": "board.scope" }), this.scopeSelect)),
        this.boardBox),
    );
    this.root.replaceChildren(this.openForm, this.summary, this.columns);
    applyTranslations(this.root);
  }

  open(id) {
    if (id === this.guardId) return;
    this.guardId = id;
    this.openForm.elements.guard.value = id;
    Object.assign(this, { guard: null, kpis: null, points: null, scope: "", stale: true });
    this.render(); // not the last guard's figures under this one's id while it loads
  }

  listsChanged() {
    this.fillScopes();
  }

  async load() {
    const seq = ++this.seq;
    const id = this.guardId;
    if (id) {
      const [guard, kpis, points] = await Promise.all([
        api.get(`/api/v1/guards/${encodeURIComponent(id)}`),
        api.get(`/api/v1/reports/response?${this.view.query({ group_by: "guard", guard_id: id })}`),
        api.get(`/api/v1/guards/${encodeURIComponent(id)}/points?${this.view.query({ limit: LEDGER_PAGE })}`),
      ]);
      if (seq !== this.seq) return;
      this.view.learnPeriod(kpis);
      Object.assign(this, { guard, kpis: kpis.items.find((r) => r.key === id) ?? kpis.total, points });
      this.scope ||= `company:${guard.company_id}`;
    }
    await this.loadBoard(seq);
  }

  async loadBoard(seq = ++this.seq) {
    const [kind, scopeId] = this.scope ? this.scope.split(":") : ["", ""];
    const params = { limit: 10, [`${kind}_id`]: kind ? scopeId : "" };
    const board = await api.get(`/api/v1/reports/leaderboard?${this.view.query(params)}`);
    if (seq !== this.seq) return;
    this.board = board;
    this.view.learnPeriod(board);
    this.render();
  }

  async changeScope() {
    this.scope = this.scopeSelect.value;
    try {
      await this.loadBoard();
    } catch (error) {
      this.view.showError(error);
    }
  }

  async more() {
    const { next_cursor: cursor } = this.points;
    try {
      const page = await api.get(
        `/api/v1/guards/${encodeURIComponent(this.guardId)}/points?${this.view.query({ limit: LEDGER_PAGE, cursor })}`,
      );
      this.points = { ...page, items: [...this.points.items, ...page.items] };
      this.renderLedger();
    } catch (error) {
      this.view.showError(error);
    }
  }

  fillScopes() {
    const own = this.view.ownCompany();
    const companies = [...this.view.companies.values()].filter((c) => !own || c.id === own);
    const group = (key, entries) => {
      const node = el("optgroup", { label: t(key) });
      node.append(...entries);
      return node;
    };
    this.scopeSelect.replaceChildren(
      ...(own ? [] : [new Option(t("board.all"), "")]),
      group("board.companies", companies.map((c) => new Option(c.name, `company:${c.id}`))),
      group("board.stations", [...this.view.stations.values()].map((s) => new Option(s.name, `station:${s.id}`))),
    );
    this.scopeSelect.value = this.scope || (own ? `company:${own}` : "");
    this.scope = this.scopeSelect.value;
  }

  render() {
    this.columns.classList.toggle("no-guard", !this.guard); // the leaderboard alone
    this.fillScopes();
    this.renderSummary();
    this.renderLedger();
    this.renderBoard();
  }

  renderSummary() {
    const g = this.guard;
    if (!g) {
      this.summary.replaceChildren(el("p", { class: "muted", text: t("guard.none") }));
      return;
    }
    const k = this.kpis ?? {};
    const card = (label, value, detail = "") =>
      el("div", { class: "kpi" }, el("span", { class: "kpi-label", text: label }),
        el("span", { class: "kpi-value", text: value }), detail ? el("span", { class: "kpi-detail", text: detail }) : null);
    this.summary.replaceChildren(
      el("div", { class: "guard-head" },
        el("h2", { text: g.name }),
        el("span", { class: `status guard-${g.status}`, text: t(`guard.status.${g.status}`) }),
        el("span", { class: "muted", text: t("guard.meta", { badge: g.badge_no, company: this.view.companyName(g.company_id) }) })),
      el("div", { class: "kpis" },
        card(t("guard.pointsTotal"), count(this.points?.total), t("guard.pointsPeriod", { n: count(this.points?.period_total) })),
        card(t("kpi.incidents"), count(k.incidents), plural("kpi.offers", k.offers ?? 0)),
        card(t("kpi.acceptance"), percent(k.acceptance_rate),
          t("kpi.acceptDetail", { accepted: count(k.accepted), declines: count(k.declines), expiries: count(k.expiries) })),
        card(t("kpi.accept"), duration(k.accept_s_p50), t("kpi.p90", { v: duration(k.accept_s_p90) })),
        card(t("kpi.onScene"), duration(k.on_scene_s_p50), t("kpi.p90", { v: duration(k.on_scene_s_p90) })),
        card(t("kpi.early"), count(k.early_disposals),
          t("kpi.gained", { total: minutes(k.minutes_gained_total), median: minutes(k.minutes_gained_p50) })),
        card(t("kpi.escalations"), count(k.escalations), t("kpi.handovers", { n: count(k.handovers) })),
      ),
    );
  }

  renderLedger() {
    const items = this.points?.items ?? [];
    if (!this.guard) return this.ledger.replaceChildren();
    const rows = items.map((p) =>
      el("tr", {},
        el("td", { class: "when", text: dateTime(p.at) }),
        el("td", { text: t(`rule.${p.rule}`) }),
        el("td", { class: `num points ${p.points < 0 ? "minus" : "plus"}`, text: p.points > 0 ? `+${p.points}` : String(p.points) }),
        el("td", { class: "reason", text: p.reason ?? "" }),
        el("td", {}, p.incident_id
          ? el("button", { type: "button", class: "link mono", title: t("guard.showIncident"),
            onclick: () => this.view.onIncident(p.incident_id) }, p.incident_id.slice(-8))
          : ""),
      ));
    this.ledger.replaceChildren(
      items.length
        ? el("table", { class: "report-table ledger-table", "aria-labelledby": "ledger-title" },
          el("thead", {}, el("tr", {}, ["at", "rule", "points", "reason", "incident"].map((c) =>
            el("th", { scope: "col", text: t(`ledger.${c}`) })))),
          el("tbody", {}, rows))
        : el("p", { class: "muted", text: t("guard.ledgerEmpty") }),
      this.points?.next_cursor ? el("button", { type: "button", class: "more", onclick: () => this.more(), text: t("guard.more") }) : "",
    );
  }

  renderBoard() {
    const items = this.board?.items ?? [];
    if (!items.length) return this.boardBox.replaceChildren(el("p", { class: "muted", text: t("board.empty") }));
    this.boardBox.replaceChildren(
      el("table", { class: "report-table board-table", "aria-labelledby": "board-title" },
        el("thead", {}, el("tr", {}, ["rank", "guard", "company", "points", "awards"].map((c) =>
          el("th", { scope: "col", class: c === "points" || c === "awards" || c === "rank" ? "num" : "", text: t(`board.${c}`) })))),
        el("tbody", {}, items.map((r) =>
          el("tr", { class: r.guard_id === this.guardId ? "me" : "", "aria-current": r.guard_id === this.guardId ? "true" : null },
            el("td", { class: "num rank", text: String(r.rank) }),
            el("th", { scope: "row", class: "name" },
              el("button", { type: "button", class: "link", onclick: () => this.view.openGuard(r.guard_id) }, r.name)),
            el("td", { text: r.company_name }),
            el("td", { class: "num", text: String(r.points) }),
            el("td", { class: "num", text: String(r.awards) }),
          )))),
    );
  }
}
