// The two dialogs: sign in (first, and again when the token expires, over the screen) and
// a new incident at a map point, with the API's validation errors next to their fields.
import * as api from "./api.js";
import { errorText } from "./format.js";
import { t, term, terms } from "./i18n.js";

const $ = (id) => document.getElementById(id);
let pendingSignIn = null;

// Resolves once signed in; concurrent callers share one dialog.
export function signInDialog({ expired }) {
  if (pendingSignIn) return pendingSignIn;
  const dialog = $("signin");
  const form = $("signin-form");
  const error = $("signin-error");
  $("signin-expired").hidden = !expired;
  error.hidden = true;
  pendingSignIn = new Promise((resolve) => {
    form.onsubmit = async (e) => {
      e.preventDefault();
      error.hidden = true;
      try {
        await api.signIn(form.elements.username.value, form.elements.password.value);
        form.elements.password.value = "";
        dialog.close();
        pendingSignIn = null;
        resolve();
      } catch (err) {
        error.textContent =
          err instanceof api.ApiError && err.status === 429
            ? t("auth.throttled", { message: err.message })
            : err instanceof api.ApiError
              ? t("auth.failed")
              : t("error.network");
        error.hidden = false;
      }
    };
  });
  dialog.oncancel = (e) => e.preventDefault(); // no way around signing in
  if (!dialog.open) dialog.showModal();
  (form.elements.username.value ? form.elements.password : form.elements.username).focus();
  return pendingSignIn;
}

export function openCreate(latlng, onCreated) {
  const dialog = $("create");
  const form = $("create-form");
  const lat = Number(latlng.lat.toFixed(6));
  const lon = Number(latlng.lng.toFixed(6));
  $("create-location").textContent = `${lat}, ${lon}`;
  fill(form.elements.category, terms("category").map((c) => [c, term("category", c)]), "other");
  fill(form.elements.priority, [1, 2, 3, 4].map((p) => [String(p), term("priority", p)]), "2");
  form.elements.description.value = "";
  form.elements.address.value = "";
  showErrors({});
  $("create-cancel").onclick = () => dialog.close();
  form.onsubmit = async (e) => {
    e.preventDefault();
    const body = {
      category: form.elements.category.value,
      priority: Number(form.elements.priority.value),
      location: { lat, lon },
      description: form.elements.description.value,
    };
    if (form.elements.address.value.trim()) body.address = form.elements.address.value;
    try {
      const incident = await api.post("/api/v1/incidents", body);
      dialog.close();
      onCreated(incident);
    } catch (err) {
      if (err instanceof api.ApiError && err.status === 422) showErrors(err.fieldErrors(), err.message);
      else showErrors({}, errorText(err));
    }
  };
  dialog.showModal();
  form.elements.description.focus();
}

function fill(select, options, selected) {
  select.replaceChildren(...options.map(([value, label]) => new Option(label, value, false, value === selected)));
}

const FIELDS = ["category", "priority", "description", "address", "location"];

function showErrors(byField, general = "") {
  let placed = false;
  for (const name of FIELDS) {
    const node = $(`create-error-${name}`);
    const key = Object.keys(byField).find((f) => f === name || f.startsWith(`${name}.`));
    node.textContent = key ? `${key}: ${byField[key]}` : "";
    node.hidden = !key;
    placed ||= Boolean(key);
    const input = $(`create-${name}`);
    if (input) input.setAttribute("aria-invalid", key ? "true" : "false");
  }
  const error = $("create-error");
  error.textContent = placed ? "" : general;
  error.hidden = placed || !general;
}
