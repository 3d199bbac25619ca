// The intel queue: guards' intelligence reports (nobody dispatched) waiting for the police's
// verdict. Listed by state and station, newest first; a role with police:act triages them
// (useful / not useful / acted on, with a note the guard gets back). Live from the
// intel.reported / intel.triaged events.
import * as api from "./api.js";
import { el } from "./dom.js";
import { age, errorText } from "./format.js";
import { t } from "./i18n.js";

const VERDICTS = ["useful", "not_useful", "acted_on"];
// What may follow each state (the server's transition table).
const NEXT = { new: VERDICTS, useful: ["acted_on"], not_useful: [], acted_on: [] };

export class IntelPanel {
  constructor(root, { stationName, onFocus }) {
    this.root = root;
    this.list = root.querySelector(".intel-list");
    this.count = root.querySelector(".intel-count");
    this.form = root.querySelector("form");
    this.stationName = stationName;
    this.onFocus = onFocus; // (report) => void: show it on the map
    this.reports = [];
    this.selectedId = null;
    this.triaging = null; // {id, state} while the note is being written
    this.error = "";
    this.timer = 0;
    this.newCount = 0;
    this.onCount = () => {};
    this.form.onchange = () => this.load();
  }

  query() {
    const data = new FormData(this.form);
    const params = new URLSearchParams({ limit: "200" });
    if (data.get("state") !== "all") params.set("state", data.get("state"));
    if (data.get("station")) params.set("station_id", data.get("station"));
    return params;
  }

  async load() {
    try {
      const page = await api.get(`/api/v1/intel?${this.query()}`);
      this.reports = page.items;
      this.error = "";
      const fresh = this.form.elements.state.value === "new" && !this.form.elements.station.value;
      if (fresh) this.newCount = this.reports.length;
      else this.newCount = (await api.get("/api/v1/intel?state=new&limit=200")).items.length;
    } catch (error) {
      this.error = errorText(error);
    }
    this.onCount(this.newCount);
    this.render();
  }

  // An intel.* event: reload once for a burst.
  changed() {
    this.timer ||= setTimeout(() => {
      this.timer = 0;
      this.load();
    }, 200);
  }

  render() {
    this.count.textContent = t("intel.count", { n: this.reports.length });
    const rows = this.reports.map((r) => this.row(r));
    if (this.error) rows.unshift(el("li", { class: "form-error", role: "alert", text: this.error }));
    if (!this.reports.length) rows.push(el("li", { class: "queue-empty", text: t("intel.empty") }));
    const focused = this.root.contains(document.activeElement) ? document.activeElement.id : null;
    this.list.replaceChildren(...rows);
    const again = focused && document.getElementById(focused);
    if (again) {
      again.focus();
      if (again.tagName === "TEXTAREA") again.selectionStart = again.selectionEnd = again.value.length;
    }
  }

  row(report) {
    const selected = report.id === this.selectedId;
    const station = report.station_id ? this.stationName(report.station_id) : t("intel.noStation");
    return el(
      "li",
      {
        role: "option",
        id: `intel-${report.id}`,
        class: `intel-row state-${report.state}`,
        "aria-selected": selected ? "true" : "false",
        "data-id": report.id,
        onclick: (e) => !e.target.closest("button, textarea, form") && this.select(report.id),
      },
      el(
        "div",
        { class: "intel-head" },
        el("strong", { text: t(`subject.${report.subject}`) }),
        el("span", { class: `intel-state s-${report.state}`, text: t(`intelState.${report.state}`) }),
        el("span", { class: "queue-station", text: station }),
        el("time", { class: "age", "data-since": report.reported_at, datetime: report.reported_at, text: age(report.reported_at) }),
      ),
      el("p", { class: "intel-desc", text: report.description }),
      report.note ? el("p", { class: "intel-note", text: t("intel.verdictNote", { note: report.note }) }) : null,
      selected ? this.actions(report) : null,
    );
  }

  actions(report) {
    if (!api.may("police:act")) return null;
    const next = NEXT[report.state] ?? [];
    if (!next.length) return null;
    if (this.triaging?.id === report.id) return this.noteForm(report);
    return el(
      "div",
      { class: "intel-actions" },
      ...next.map((state) =>
        el("button", {
          type: "button",
          class: `small verdict-${state}`,
          "data-verdict": state,
          text: t(`intel.mark.${state}`),
          onclick: () => this.startTriage(report, state),
        }),
      ),
    );
  }

  noteForm(report) {
    const noteId = `intel-note-${report.id}`;
    const errorId = `intel-note-error-${report.id}`;
    return el(
      "form",
      {
        class: "intel-triage",
        novalidate: true,
        onsubmit: (e) => {
          e.preventDefault();
          this.triage(report, e.target.elements.note.value);
        },
        onkeydown: (e) => {
          if (e.key === "Escape") {
            e.stopPropagation();
            this.triaging = null;
            this.render();
            this.list.focus();
          }
        },
      },
      el("label", { for: noteId, text: t("intel.noteLabel", { verdict: t(`intel.mark.${this.triaging.state}`) }) }),
      // The draft survives a re-render (a live update of the list while the note is typed).
      el("textarea", {
        id: noteId, name: "note", rows: 2, maxlength: 2000, "aria-describedby": errorId,
        "aria-invalid": this.triaging.error ? "true" : "false",
        oninput: (e) => this.typed(e.target, errorId),
      }, this.triaging.draft ?? ""),
      el("p", { id: errorId, class: "field-error", hidden: !this.triaging.error, text: this.triaging.error || "" }),
      el(
        "div",
        { class: "dialog-buttons" },
        el("button", { type: "button", class: "small", text: t("create.cancel"), onclick: () => { this.triaging = null; this.render(); } }),
        el("button", { type: "submit", class: "small primary", text: t("intel.send") }),
      ),
    );
  }

  // Keep the draft; a refusal's message goes once the note is being corrected.
  typed(area, errorId) {
    this.triaging.draft = area.value;
    if (!this.triaging.error) return;
    this.triaging.error = "";
    document.getElementById(errorId).hidden = true;
    area.setAttribute("aria-invalid", "false");
  }

  startTriage(report, state) {
    this.triaging = { id: report.id, state, error: "" };
    this.render();
    document.getElementById(`intel-note-${report.id}`)?.focus();
  }

  async triage(report, note) {
    const { state } = this.triaging;
    try {
      await api.post(`/api/v1/intel/${report.id}/triage`, { state, note });
      this.triaging = null;
      await this.load();
      this.list.focus();
    } catch (error) {
      const fields = error instanceof api.ApiError ? error.fieldErrors() : {};
      const message = fields.note ? `note: ${fields.note}` : errorText(error);
      this.triaging = { id: report.id, state, error: message, draft: note };
      this.render();
      document.getElementById(`intel-note-${report.id}`)?.focus();
    }
  }

  select(id) {
    if (this.selectedId !== id) this.triaging = null;
    this.selectedId = id;
    this.render();
    const row = document.getElementById(`intel-${id}`);
    row?.scrollIntoView({ block: "nearest" });
    if (row) this.list.setAttribute("aria-activedescendant", row.id);
    const report = this.reports.find((r) => r.id === id);
    if (report) this.onFocus(report);
  }

  move(step) {
    if (!this.reports.length) return;
    const at = this.reports.findIndex((r) => r.id === this.selectedId);
    const next = at < 0 ? 0 : Math.min(this.reports.length - 1, Math.max(0, at + step));
    this.select(this.reports[next].id);
  }

  // Keys 1 / 2 / 3 on the selected report: start that verdict (if it may follow).
  verdictKey(index) {
    const report = this.reports.find((r) => r.id === this.selectedId);
    const state = VERDICTS[index];
    if (!report || !api.may("police:act") || !(NEXT[report.state] ?? []).includes(state)) return;
    this.startTriage(report, state);
  }

  tick(now) {
    for (const node of this.list.querySelectorAll("time[data-since]")) node.textContent = age(node.dataset.since, now);
  }
}
