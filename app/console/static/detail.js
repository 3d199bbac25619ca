// The incident detail: what is happening (offers with their countdown, assignments, the
// police's progress, the timeline) and the actions this user's role may take. The server
// enforces every rule again; the page only hides what would be refused.
import { may } from "./api.js";
import { el } from "./dom.js";
import { age, clockTime, dateTime, distance, eta, secondsUntil } from "./format.js";
import { language, t, term } from "./i18n.js";
import { drillBadge } from "./queue.js";

const OPEN = new Set(["new", "dispatching", "assigned", "on_scene"]);

export class Detail {
  constructor(root, { guardName, stationName, act }) {
    this.root = root;
    this.guardName = guardName;
    this.stationName = stationName;
    this.act = act; // (action, incident, extra) => Promise
    this.incident = null;
    this.events = [];
    this.nearby = null;
    this.error = "";
    this.renderEmpty();
  }

  renderEmpty() {
    this.incident = null;
    this.root.replaceChildren(el("p", { class: "detail-empty", text: t("detail.none") }));
  }

  show(incident, events) {
    if (this.incident?.id !== incident.id) {
      this.nearby = null;
      this.error = "";
    }
    this.incident = incident;
    this.events = events;
    this.render();
  }

  showNearby(items) {
    this.nearby = items;
    this.render();
    this.root.querySelector(".nearby button")?.focus();
  }

  showError(message) {
    this.error = message;
    this.render();
  }

  render() {
    const i = this.incident;
    if (!i) return this.renderEmpty();
    const open = OPEN.has(i.status);
    const parts = [
      el(
        "header",
        { class: "detail-head" },
        el("span", { class: `badge p${i.priority}`, text: `P${i.priority}` }),
        el("h2", { id: "detail-title" }, term("category", i.category), el("small", { class: "detail-id", text: i.id })),
        el("span", { class: `status s-${i.status}`, text: term("status", i.status) }),
        i.exercise ? drillBadge() : null,
      ),
      i.unstaffed && open ? el("p", { class: "unstaffed-banner", role: "status", text: t("detail.unstaffed") }) : null,
      el("p", { class: "detail-desc", text: i.description }),
      el(
        "p",
        { class: "detail-meta" },
        i.address ? el("span", { text: i.address }) : null,
        el("span", {
          text: t("detail.created", {
            time: dateTime(i.created_at), age: age(i.created_at), who: i.created_by,
          }),
        }),
        i.station_id ? el("span", { text: t("detail.station", { name: this.stationName(i.station_id) }) }) : null,
        el("span", { text: t("detail.guardsNeeded", { assigned: i.assigned_count, required: i.required_guards }) }),
      ),
      i.allowed_tiers?.length ? this.tiers(i) : null,
      this.error ? el("p", { class: "form-error", role: "alert", text: this.error }) : null,
      this.actions(i, open),
      this.nearby ? this.nearbyList(i) : null,
      open && may("police:act") ? this.instructionForm(i) : null,
      this.section("detail.offers", i.offers.length ? this.offers(i) : el("p", { class: "muted", text: t("detail.noOffers") })),
      this.section("detail.assignments", i.assignments.length ? this.assignments(i) : el("p", { class: "muted", text: t("detail.noAssignments") })),
      this.section("detail.escalations", i.escalations.length ? this.escalations(i) : el("p", { class: "muted", text: t("detail.noEscalations") })),
      this.section("detail.timeline", this.timeline()),
    ];
    this.root.replaceChildren(...parts.filter(Boolean));
  }

  // What guards may be asked to do here, fixed at intake; the safety note is the tooltip.
  tiers(i) {
    const note = i.safety_note?.[language()] ?? i.safety_note?.en;
    return el(
      "p",
      { class: "detail-tiers", title: note },
      el("span", { class: "muted", text: t("detail.tiers") }),
      i.allowed_tiers.map((tier) => el("span", { class: "tier", "data-tier": tier, text: term("tier", tier) })),
    );
  }

  section(titleKey, body) {
    return el("section", { class: "detail-section" }, el("h3", { text: t(titleKey) }), body);
  }

  button(action, labelKey, incident, extra, kind = "") {
    return el("button", {
      type: "button",
      class: `action ${kind}`,
      "data-action": action,
      text: t(labelKey),
      onclick: () => this.act(action, incident, extra),
    });
  }

  actions(i, open) {
    const operate = may("incidents:operate");
    const police = may("police:act");
    const buttons = [];
    if (open && operate) {
      buttons.push(this.button("assign", "action.assign", i));
      buttons.push(this.button("escalate", "action.escalate", i, undefined, "warn"));
    }
    if (open && (operate || police)) buttons.push(this.button("resolve", "action.resolve", i));
    if (open && operate) buttons.push(this.button("cancel", "action.cancel", i, undefined, "danger"));
    if (i.status === "resolved" && (operate || police)) buttons.push(this.button("close", "action.close", i));
    return buttons.length ? el("div", { class: "detail-actions" }, buttons) : null;
  }

  nearbyList(i) {
    if (!this.nearby.length) return el("p", { class: "muted nearby", text: t("assign.none") });
    return el(
      "div",
      { class: "nearby" },
      el("h3", { text: t("assign.title") }),
      el(
        "ol",
        {},
        this.nearby.map((n) =>
          el(
            "li",
            {},
            el("span", { class: "nearby-name", text: `${n.guard.name} · ${n.guard.badge_no}` }),
            el("span", { class: "nearby-figures", text: `${distance(n.distance_m)} · ETA ${eta(n.eta_s)}` }),
            el("button", {
              type: "button",
              class: "action",
              "data-guard": n.guard.id,
              text: t("assign.pick"),
              onclick: () => this.act("assign-guard", i, n.guard.id),
            }),
          ),
        ),
      ),
    );
  }

  instructionForm(i) {
    const text = el("input", {
      type: "text",
      name: "instruction",
      maxlength: 1000,
      "aria-label": t("action.instruct"),
      placeholder: t("instruct.placeholder"),
    });
    return el(
      "form",
      {
        class: "instruction",
        onsubmit: (e) => {
          e.preventDefault();
          if (text.value.trim()) this.act("instruct", i, text.value.trim());
        },
      },
      text,
      el("button", { type: "submit", class: "action", text: t("action.instruct") }),
    );
  }

  offers(i) {
    const withdraw = may("incidents:operate");
    return el(
      "table",
      { class: "detail-table" },
      el(
        "tbody",
        {},
        [...i.offers].reverse().map((o) =>
          el(
            "tr",
            { "data-offer": o.id },
            el("td", { text: this.guardName(o.guard_id) }),
            el("td", { text: `${t("detail.wave", { n: o.wave })} · ${distance(o.distance_m)} · ETA ${eta(o.eta_s)}` }),
            el(
              "td",
              {},
              o.outcome
                ? el("span", { class: `status s-${o.outcome}`, text: term("status", o.outcome) })
                : el("span", { class: "countdown", "data-deadline": o.expires_at, text: countdown(o.expires_at) }),
            ),
            el("td", {}, !o.outcome && withdraw ? this.button("withdraw", "action.withdraw", i, o.id, "small") : null),
          ),
        ),
      ),
    );
  }

  assignments(i) {
    return el(
      "table",
      { class: "detail-table" },
      el(
        "tbody",
        {},
        i.assignments.map((a) =>
          el(
            "tr",
            {},
            el("td", { text: this.guardName(a.guard_id) }),
            el("td", {}, el("span", { class: `status s-${a.status}`, text: term("status", a.status) })),
            el("td", { text: `${clockTime(a.assigned_at)}${a.on_scene_at ? ` → ${clockTime(a.on_scene_at)}` : ""}` }),
          ),
        ),
      ),
    );
  }

  escalations(i) {
    const police = may("police:act") && OPEN.has(i.status);
    const steps = [
      ["acknowledged_at", "status", "acknowledged"],
      ["police_on_scene_at", "status", "police_on_scene"],
      ["handed_over_at", "status", "handed_over"],
    ];
    return el(
      "ul",
      { class: "escalations" },
      i.escalations.map((e) =>
        el(
          "li",
          {},
          el("strong", { text: this.stationName(e.station_id) }),
          ` · ${term("reason", e.reason)} · ${clockTime(e.created_at)} `,
          el(
            "ol",
            { class: "police-progress" },
            steps.map(([field, kind, value]) =>
              el("li", { class: e[field] ? "done" : "todo" }, term(kind, value), e[field] ? ` ${clockTime(e[field])}` : ""),
            ),
          ),
          police ? this.policeButton(i, e) : null,
        ),
      ),
    );
  }

  policeButton(i, e) {
    const next = { sent: ["police-ack", "action.policeAck"], acknowledged: ["police-arrived", "action.policeArrived"], police_on_scene: ["police-handover", "action.policeHandover"] }[e.status];
    return next ? this.button(next[0], next[1], i, e.station_id, "small") : null;
  }

  timeline() {
    return el(
      "ol",
      { class: "timeline" },
      [...this.events].reverse().map((ev) =>
        el(
          "li",
          {},
          el("time", { datetime: ev.at, text: clockTime(ev.at) }),
          el("span", { class: "ev-type", text: ev.type }),
          el("span", { class: "ev-actor", text: ev.actor }),
          el("span", { class: "ev-data", text: summary(ev, this.guardName) }),
        ),
      ),
    );
  }

  tick(now) {
    for (const node of this.root.querySelectorAll("[data-deadline]")) {
      node.textContent = countdown(node.dataset.deadline, now);
    }
  }
}

function countdown(deadline, now = Date.now()) {
  const s = secondsUntil(deadline, now);
  return s > 0 ? t("detail.expiresIn", { s: `${s}s` }) : t("detail.expired");
}

function summary(ev, guardName) {
  const d = ev.data || {};
  const parts = [];
  if (d.guard_id) parts.push(guardName(d.guard_id));
  if (d.reason) parts.push(d.reason);
  if (d.note) parts.push(d.note);
  if (d.text) parts.push(`“${d.text}”`);
  if (d.wave) parts.push(`wave ${d.wave}`);
  return parts.join(" · ");
}
