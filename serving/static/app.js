// alliance-risk intake page: builds the form from GET /model's catalog, checks values against
// the catalog's codes and ranges, scores with POST /score and shows risk, band and drivers.
// Plain JavaScript, no build step, nothing loaded from outside this server.
"use strict";

const KEY_STORE = "alliance-risk-api-key";
// Identifiers and dates sit at the top of "About the client"; counsellor_id with the counsellor.
const EXTRA_SECTION = {
  admission_id: "client",
  service_id: "client",
  admission_date: "client",
  counsellor_id: "counsellor",
};
const LABELS = {
  admission_id: "Admission ID",
  service_id: "Service ID",
  counsellor_id: "Counsellor ID",
  admission_date: "Admission date",
  crack_days_28: "Days crack used (last 28)",
  opiate_days_28: "Days opiates used (last 28)",
  age_first_use: "Age at first use",
  mot_problem_recognition: "Problem recognition",
  mot_desire_for_help: "Desire for help",
  mot_treatment_readiness: "Treatment readiness",
  mot_external_pressure: "External pressure",
  psych_distress: "Psychological distress (GHQ-12)",
  coping_adaptive: "Adaptive coping",
  coping_avoidant: "Avoidant coping",
  attach_secure: "Secure",
  attach_fearful: "Fearful",
  attach_preoccupied: "Preoccupied",
  attach_dismissing: "Dismissing",
  counsellor_sex: "Counsellor's sex",
  counsellor_ex_user: "Counsellor in recovery",
  counsellor_years_experience: "Counsellor's years of experience",
};

// fields: what the form sends now (scale scores, or the items of questionnaires switched to
// item answers); mode: questionnaire id -> "scale" | "items".
const state = { key: sessionStorage.getItem(KEY_STORE), model: null, fields: [], base: [], mode: {} };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function label(name) {
  if (LABELS[name]) return LABELS[name];
  const s = name.replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function pct(p, digits = 1) {
  // A risk that rounds to 0 or 100 is not zero or certain: say "below" / "above" the last digit
  // (the typical client's risk after two typical weekly ratings is about 0.02%).
  const floor = Math.pow(10, -digits);
  if (p > 0 && 100 * p < floor) return `<${floor.toFixed(digits)}%`;
  if (p < 1 && 100 * p > 100 - floor) return `>${(100 - floor).toFixed(digits)}%`;
  return (100 * p).toFixed(digits) + "%";
}

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text || "";
  s.classList.toggle("error", !!isError);
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {}, {
    Authorization: "Bearer " + state.key,
  });
  if (options.body) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  let body = null;
  try {
    body = await resp.json();
  } catch (e) {
    body = null;
  }
  return { status: resp.status, body };
}

// ---- authentication --------------------------------------------------------------------------
function showAuth(message) {
  $("auth").hidden = false;
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("auth-error").textContent = message || "";
  $("api-key").value = "";
  $("api-key").focus();
}

function forgetKey(message) {
  sessionStorage.removeItem(KEY_STORE);
  state.key = null;
  showAuth(message);
}

$("auth-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) {
    $("auth-error").textContent = "Enter the key.";
    return;
  }
  state.key = key;
  sessionStorage.setItem(KEY_STORE, key);
  loadModel();
});

$("sign-out").addEventListener("click", () => forgetKey(""));

// ---- the form --------------------------------------------------------------------------------
async function loadModel() {
  setStatus("Loading the model…");
  let r;
  try {
    r = await api("/model");
  } catch (e) {
    setStatus("The service cannot be reached.", true);
    return;
  }
  if (r.status === 401) {
    setStatus("");
    forgetKey("That key was not accepted. Check it and try again.");
    return;
  }
  if (r.status !== 200) {
    setStatus((r.body && r.body.error) || "The service is not ready (HTTP " + r.status + ").", true);
    return;
  }
  setStatus("");
  state.model = r.body;
  $("auth").hidden = true;
  $("sign-out").hidden = false;
  const mv = $("model-version");
  mv.textContent = "Model " + r.body.name + " v" + r.body.version + (r.body.synthetic_data ? " (SYNTHETIC)" : "");
  mv.hidden = false;
  $("synthetic-banner").hidden = !r.body.synthetic_data;
  buildForm(r.body);
  $("app").hidden = false;
}

function formFields(model) {
  return model.catalog.filter(
    (f) => f.table === "intake" && !f.is_item && (f.section || EXTRA_SECTION[f.name])
  );
}

function hint(f) {
  const parts = [];
  if (f.kind === "integer" || f.kind === "number") {
    if (f.min !== null && f.max !== null) parts.push(`${f.min}–${f.max}`);
    if (f.unit) parts.push(f.unit);
  }
  if (f.instrument && f.kind !== "integer") parts.push(f.instrument);
  return parts.join(" · ");
}

function inputFor(f) {
  const id = "f-" + f.name;
  const common = { id, name: f.name, "aria-describedby": "err-" + f.name };
  if (f.codes) {
    const sel = el("select", common);
    sel.append(el("option", { value: "", text: f.required ? "— choose —" : "— not recorded —" }));
    for (const c of f.codes) sel.append(el("option", { value: c, text: c.replace(/_/g, " ") }));
    return sel;
  }
  if (f.kind === "boolean") {
    const sel = el("select", common);
    sel.append(el("option", { value: "", text: "— not recorded —" }));
    sel.append(el("option", { value: "true", text: "yes" }));
    sel.append(el("option", { value: "false", text: "no" }));
    return sel;
  }
  if (f.kind === "integer" || f.kind === "number") {
    return el("input", Object.assign({}, common, {
      type: "number",
      inputmode: f.kind === "integer" ? "numeric" : "decimal",
      step: f.kind === "integer" ? "1" : "any",
      min: f.min,
      max: f.max,
    }));
  }
  if (f.kind === "date") {
    return el("input", Object.assign({}, common, {
      type: "date",
      min: "2000-01-01",
      max: new Date().toISOString().slice(0, 10),
    }));
  }
  return el("input", Object.assign({}, common, {
    type: "text",
    maxlength: "64",
    autocomplete: "off",
    spellcheck: "false",
  }));
}

function fieldWrap(f, labelText) {
  const wrap = el("div", { class: "field" + (f.required ? " required" : ""), id: "wrap-" + f.name });
  const lab = el("label", { for: "f-" + f.name, title: f.description }, labelText);
  if (f.required) lab.append(el("span", { class: "req", "aria-hidden": "true", text: " *" }));
  wrap.append(lab, inputFor(f));
  const h = hint(f);
  if (h) wrap.append(el("span", { class: "hint", text: h }));
  wrap.append(el("span", { class: "field-error", id: "err-" + f.name, role: "alert" }));
  return wrap;
}

// An item answer: the instrument's response numbers, anchor words at both ends (no item wording).
function itemInput(f, q) {
  const wrap = el("div", { class: "field item", id: "wrap-" + f.name });
  wrap.append(el("label", { for: "f-" + f.name, title: f.description }, f.name));
  const sel = el("select", { id: "f-" + f.name, name: f.name, "aria-describedby": "err-" + f.name });
  sel.append(el("option", { value: "", text: "—" }));
  for (let v = q.low; v <= q.high; v++) {
    const words = v === q.low ? " " + q.anchors.low : v === q.high ? " " + q.anchors.high : "";
    sel.append(el("option", { value: String(v), text: v + words }));
  }
  wrap.append(sel, el("span", { class: "field-error", id: "err-" + f.name, role: "alert" }));
  return wrap;
}

// Items of a questionnaire in the order of the form a worker holds: by item-code prefix, then
// number (the two Brief COPE composites share one numbering, 1-28).
function itemGroups(q) {
  const groups = new Map();
  for (const sc of q.scales) {
    const prefix = sc.items[0].replace(/_\d+$/, "");
    if (!groups.has(prefix)) groups.set(prefix, { scales: [], items: [] });
    const g = groups.get(prefix);
    g.scales.push(sc);
    g.items.push(...sc.items);
  }
  for (const g of groups.values()) g.items.sort();
  return [...groups.values()];
}

function questionnaireBlock(q, scaleFields) {
  const box = el("div", { class: "questionnaire", id: "q-" + q.id, "data-mode": "scale" });
  const sw = el("div", { class: "switch", role: "radiogroup", "aria-label": q.instrument + " entry" });
  for (const [value, text] of [["scale", "scale score"], ["items", "item answers"]]) {
    const id = `mode-${q.id}-${value}`;
    sw.append(
      el("input", { type: "radio", id, name: "mode-" + q.id, value, checked: value === "scale" }),
      el("label", { for: id, text })
    );
  }
  box.append(el("div", { class: "q-head" }, el("span", { class: "q-name", text: q.instrument }), sw));
  const scales = el("div", { class: "grid q-scales" });
  for (const f of scaleFields) scales.append(fieldWrap(f, label(f.name)));
  const items = el("div", { class: "q-items", hidden: true });
  const byName = Object.fromEntries(state.model.catalog.map((f) => [f.name, f]));
  for (const g of itemGroups(q)) {
    const title = g.scales.length === 1 ? label(g.scales[0].field) : q.instrument + " items";
    const blanks = g.scales.map((sc) => sc.max_missing).join(" / ");
    const refl = g.scales.flatMap((sc) => sc.reflected);
    const note =
      `${g.items[0]} … ${g.items[g.items.length - 1]} · ${q.low}–${q.high} · ` +
      `up to ${blanks} blank (prorated)` + (refl.length ? ` · reflected: ${refl.join(", ")} (scored by the server)` : "");
    items.append(el("h4", { class: "item-scale" }, title, el("span", { class: "hint", text: " " + note })));
    const grid = el("div", { class: "item-grid" });
    for (const code of g.items) grid.append(itemInput(byName[code], q));
    items.append(grid);
    for (const sc of g.scales) {
      // Server errors on the scale (e.g. items contradicting a given score) land here.
      items.append(el("span", { class: "field-error", id: "err-items-" + sc.field, role: "alert" }));
    }
  }
  box.append(scales, items);
  for (const r of sw.querySelectorAll("input")) {
    r.addEventListener("change", () => setMode(q, r.value));
  }
  return box;
}

function setMode(q, mode) {
  state.mode[q.id] = mode;
  const box = $("q-" + q.id);
  box.dataset.mode = mode;
  box.querySelector(".q-scales").hidden = mode !== "scale";
  box.querySelector(".q-items").hidden = mode !== "items";
  state.fields = activeFields();
}

function activeFields() {
  const byName = Object.fromEntries(state.model.catalog.map((f) => [f.name, f]));
  const out = [];
  const inQ = new Map();
  for (const q of state.model.questionnaires || []) {
    for (const sc of q.scales) inQ.set(sc.field, q);
  }
  for (const f of state.base) {
    const q = inQ.get(f.name);
    if (q && state.mode[q.id] === "items") {
      const sc = q.scales.find((s) => s.field === f.name);
      for (const code of sc.items) out.push(byName[code]);
    } else out.push(f);
  }
  return out;
}

function buildForm(model) {
  const fields = formFields(model);
  state.base = fields;
  state.mode = {};
  const qs = model.questionnaires || [];
  const box = $("sections");
  box.replaceChildren();
  for (const sec of model.sections) {
    const inSec = fields.filter((f) => (EXTRA_SECTION[f.name] || f.section) === sec.id);
    if (!inSec.length) continue;
    // identifiers first within "About the client"
    inSec.sort((a, b) => (EXTRA_SECTION[b.name] ? 1 : 0) - (EXTRA_SECTION[a.name] ? 1 : 0));
    const fs = el("fieldset", { class: "section", id: "section-" + sec.id });
    fs.append(el("legend", { text: sec.title }));
    const secQs = qs.filter((q) => q.section === sec.id);
    const inQ = new Set(secQs.flatMap((q) => q.scales.map((sc) => sc.field)));
    const plain = inSec.filter((f) => !inQ.has(f.name));
    if (plain.length) {
      const grid = el("div", { class: "grid" });
      for (const f of plain) grid.append(fieldWrap(f, label(f.name)));
      fs.append(grid);
    }
    for (const q of secQs) {
      state.mode[q.id] = "scale";
      const scaleFields = inSec.filter((f) => q.scales.some((sc) => sc.field === f.name));
      fs.append(questionnaireBlock(q, scaleFields));
    }
    box.append(fs);
  }
  state.fields = activeFields();
}

// ---- checking and collecting values ----------------------------------------------------------
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

function readValue(f) {
  const raw = $("f-" + f.name).value.trim();
  if (raw === "") return { missing: true };
  if (f.codes) {
    return f.codes.includes(raw) ? { value: raw } : { error: "choose one of the listed values" };
  }
  if (f.kind === "boolean") return { value: raw === "true" };
  if (f.kind === "integer" || f.kind === "number") {
    const x = Number(raw);
    if (!Number.isFinite(x)) return { error: "enter a number" };
    if (f.kind === "integer" && !Number.isInteger(x)) return { error: "enter a whole number" };
    if ((f.min !== null && x < f.min) || (f.max !== null && x > f.max)) {
      return { error: `must be between ${f.min} and ${f.max}` };
    }
    return { value: x };
  }
  if (f.kind === "date") {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(raw)) return { error: "enter a date (YYYY-MM-DD)" };
    const today = new Date().toISOString().slice(0, 10);
    if (raw < "2000-01-01" || raw > today) return { error: "must be between 2000-01-01 and today" };
    return { value: raw };
  }
  if (f.pattern && !ID_RE.test(raw)) return { error: "use 1–64 letters, digits, _ or -" };
  return { value: raw };
}

function clearErrors() {
  for (const slot of document.querySelectorAll("#intake-form .field-error")) slot.textContent = "";
  for (const w of document.querySelectorAll("#intake-form .invalid")) w.classList.remove("invalid");
  const fe = $("form-errors");
  fe.replaceChildren();
  fe.hidden = true;
}

function showFieldError(name, reason) {
  // A scale entered as item answers: its error shows under the items.
  let slot = $("err-" + name);
  if (slot && slot.offsetParent === null) slot = $("err-items-" + name);
  if (slot && slot.offsetParent !== null) {
    slot.textContent = reason;
    const wrap = $("wrap-" + name);
    if (wrap) wrap.classList.add("invalid");
    return true;
  }
  return false;
}

function showFormErrors(errors) {
  const fe = $("form-errors");
  const list = el("ul");
  for (const e of errors) list.append(el("li", { text: `${e.field}: ${e.reason}` }));
  fe.replaceChildren(el("strong", { text: "The server could not score this record:" }), list);
  fe.hidden = false;
}

function collect() {
  const record = {};
  const errors = [];
  for (const f of state.fields) {
    const r = readValue(f);
    if (r.error) errors.push({ field: f.name, reason: r.error });
    else if (r.missing) {
      if (f.required) errors.push({ field: f.name, reason: "required" });
    } else record[f.name] = r.value;
  }
  if (
    record.age_first_use !== undefined && record.age !== undefined &&
    record.age_first_use > record.age
  ) {
    errors.push({ field: "age_first_use", reason: "must not be above age" });
  }
  return { record, errors };
}

$("intake-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  clearErrors();
  const { record, errors } = collect();
  if (errors.length) {
    for (const e of errors) showFieldError(e.field, e.reason);
    const first = $("f-" + errors[0].field);
    if (first) first.focus();
    return;
  }
  state.lastRecord = record;
  await score(record);
});

$("intake-form").addEventListener("reset", () => {
  clearErrors();
  $("result").hidden = true;
});

// POST /score from a button: the button is disabled meanwhile and the status line says what is
// happening; null when the service cannot be reached or the key was refused (both said on the
// page), else the answer for the caller to show. Shared by the intake and the weekly check.
async function postScore(body, btnId, doing) {
  const btn = $(btnId);
  btn.disabled = true;
  setStatus(doing);
  let r;
  try {
    r = await api("/score", { method: "POST", body: JSON.stringify(body) });
  } catch (e) {
    setStatus("The service cannot be reached.", true);
    btn.disabled = false;
    return null;
  }
  btn.disabled = false;
  setStatus("");
  if (r.status === 401) {
    forgetKey("The key is no longer accepted. Enter it again.");
    return null;
  }
  return r;
}

async function score(record) {
  const r = await postScore(record, "score-btn", "Scoring…");
  if (!r) return;
  if (r.status === 200) {
    state.lastResult = r.body;
    renderResult(r.body);
    return;
  }
  const errs = (r.body && r.body.errors) || [];
  if (errs.length) {
    // Map the server's field-named errors to the fields; anything else goes in the list below.
    const other = errs.filter((e) => !showFieldError(e.field, e.reason));
    if (other.length) showFormErrors(other);
    const firstField = errs.find((e) => $("f-" + e.field));
    if (firstField) $("f-" + firstField.field).focus();
  } else {
    setStatus((r.body && r.body.error) || "Scoring failed (HTTP " + r.status + ").", true);
  }
}

// ---- the result ------------------------------------------------------------------------------
const BAND_WORDS = { low: "Low risk", moderate: "Moderate risk", high: "High risk" };

function signed(points) {
  const v = 100 * points;
  const t = Math.abs(v).toFixed(1);
  if (t === "0.0") return "0.0";
  return (v > 0 ? "+" : "−") + t;
}

const EFFECT_WORDS = { raises: "raises risk", lowers: "lowers risk", none: "no noticeable effect" };

function driverItem(d, maxPts) {
  const cls = d.effect === "raises" ? "raises" : d.effect === "lowers" ? "lowers" : "neutral";
  const w = (50 * Math.abs(d.points)) / maxPts;
  const bar = el("div", { class: "bar-track" });
  const fill = el("div", { class: "bar " + (d.points > 0 ? "raise" : "lower") });
  fill.style.width = w + "%";
  fill.style.left = d.points > 0 ? "50%" : 50 - w + "%";
  bar.append(el("div", { class: "bar-axis" }), fill);
  const values = d.values
    .map((v) => `${label(v.field)} ${v.shown}` + (v.typical !== null && v.typical !== undefined ? ` (typical ${v.typical_shown})` : ""))
    .join("; ");
  const li = el("li", { class: `driver ${cls}` + (d.assessed ? "" : " not-assessed"), "data-driver": d.driver, "data-points": String(d.points) },
    el("div", { class: "driver-head" },
      el("span", { class: "driver-name", text: d.label }),
      d.modifiable ? el("span", { class: "tag", text: "modifiable" }) : null,
      d.status !== "assessed" ? el("span", { class: "tag status", text: d.status }) : null,
      el("span", { class: "driver-points", text: `${signed(d.points)} points · ${EFFECT_WORDS[d.effect] || d.effect}` })
    ),
    bar,
    values ? el("div", { class: "driver-values", text: values }) : null
  );
  // The suggestion for a group not assessed, or for a questionnaire left out of a group.
  if (d.suggestion && (!d.assessed || d.suggestion.startsWith("Complete"))) {
    const what = d.assessed ? "Not given: " : "Not assessed: ";
    li.append(el("div", { class: "driver-missing" }, el("strong", { text: what }), d.suggestion));
  }
  return li;
}

// Suggested actions, each with its evidence and source (the intake drivers and the weekly markers).
function actionList(actions) {
  const ul = el("ul");
  for (const a of actions) {
    ul.append(el("li", {}, a.action,
      el("span", { class: "evidence", text: ` — ${a.evidence}.` }),
      el("span", { class: "source", text: ` Source: ${a.source}.` })));
  }
  return ul;
}

function setIntervalData(node, iv) {
  if (iv) {
    node.dataset.riskLow = String(iv.low);
    node.dataset.riskHigh = String(iv.high);
  } else {
    delete node.dataset.riskLow;
    delete node.dataset.riskHigh;
  }
}

// "(95% uncertainty LL–HH%)": how every stated interval reads, the admission and the weekly ones.
function intervalWords(iv) {
  return `(${Math.round(100 * iv.level)}% uncertainty ${(100 * iv.low).toFixed(0)}–${pct(iv.high, 0)})`;
}

// The interval's words with whether the band is certain, and its bar on the risk scale.
function showInterval(iv, band, textEl, barEl) {
  if (!iv) {
    textEl.textContent = "(this model states no uncertainty interval)";
    barEl.hidden = true;
    return;
  }
  const others = iv.bands_possible.filter((x) => x !== band);
  textEl.textContent =
    `${intervalWords(iv)} · ` +
    (iv.band_certain
      ? "the band is certain at this uncertainty"
      : `the band could also be ${others.join(" or ")}`);
  barEl.style.left = 100 * iv.low + "%";
  barEl.style.width = Math.max(0.5, 100 * (iv.high - iv.low)) + "%";
  barEl.hidden = false;
}

function renderResult(r) {
  const res = $("result");
  res.dataset.risk = String(r.risk);
  res.dataset.band = r.band;
  $("risk-percent").textContent = pct(r.risk);
  // The 95% uncertainty interval (bootstrap refits of the model) and whether the band is certain.
  setIntervalData(res, r.risk_interval);
  showInterval(r.risk_interval, r.band, $("risk-interval"), $("scale-interval"));
  const band = $("band");
  band.textContent = BAND_WORDS[r.band] || r.band;
  band.className = "band band-" + r.band;

  const b = r.bands;
  const scale = res.querySelector(".scale");
  scale.style.setProperty("--pos-mod", 100 * b.moderate_from + "%");
  scale.style.setProperty("--pos-high", 100 * b.high_from + "%");
  $("scale-marker").style.left = Math.min(99.5, Math.max(0.5, 100 * r.risk)) + "%";
  $("base-line").textContent =
    `The typical client's risk: ${pct(r.typical_risk)} (the medians and most common answers of ` +
    `the training data). Bands: low below ${pct(b.moderate_from, 0)}, high from ${pct(b.high_from, 0)}.`;
  $("monitoring").textContent = r.monitoring
    ? "Monitoring: " + r.monitoring.action + ` (source: ${r.monitoring.source}).`
    : "No extra alliance monitoring is suggested for this band.";

  // Scales scored from item answers.
  const ss = $("scored-scales");
  ss.replaceChildren();
  for (const s of r.scored_scales || []) {
    const how = s.prorated
      ? `prorated from ${s.items_answered} of ${s.items_total} items`
      : `all ${s.items_total} items`;
    ss.append(el("li", { "data-scale": s.scale, "data-score": String(s.score) },
      el("strong", { text: `${label(s.scale)}: ${fmt(s.score)}` }),
      ` (${s.instrument || ""}, scored from item answers, ${how})`));
  }
  $("scored-block").hidden = ss.children.length === 0;

  // Drivers: every group once, assessed or not; diverging bars scaled to the largest.
  const list = $("drivers");
  list.replaceChildren();
  const maxPts = Math.max(0.0001, ...r.drivers.map((d) => Math.abs(d.points)));
  for (const d of r.drivers) list.append(driverItem(d, maxPts));
  const total = r.drivers.reduce((a, d) => a + d.points, 0);
  $("drivers-total").textContent =
    `All drivers together: ${signed(total)} points = ${pct(r.risk)} − ${pct(r.typical_risk)} (typical client).`;

  // Actions and what-ifs for modifiable drivers that raise the risk.
  const acts = $("actions");
  acts.replaceChildren();
  const withActions = r.drivers.filter((d) => (d.actions && d.actions.length) || d.what_if || d.what_if_omitted);
  for (const d of withActions) {
    const card = el("div", { class: "action-card", "data-driver": d.driver });
    card.append(el("h4", { text: d.label }));
    if (d.actions.length) card.append(actionList(d.actions));
    if (d.what_if) {
      card.append(el("p", { class: "what-if" },
        `If ${d.label.toLowerCase()} were at the typical client's level, the risk would be `,
        el("strong", { text: pct(d.what_if.risk) }),
        ` instead of ${pct(d.what_if.instead_of)}.`));
    } else if (d.what_if_omitted) {
      card.append(el("p", { class: "what-if-omitted muted small", text: "No what-if shown: " + d.what_if_omitted + "." }));
    }
    acts.append(card);
  }
  $("actions-block").hidden = withActions.length === 0;

  const wl = $("warnings");
  wl.replaceChildren(...r.warnings.map((w) => el("li", { text: w })));
  $("warnings-block").hidden = r.warnings.length === 0;

  const trained =
    (state.model && state.model.trained_at ? `, trained ${state.model.trained_at.slice(0, 10)}` : "") +
    (state.model && state.model.synthetic_data ? " on SYNTHETIC data" : "");
  $("result-model").textContent =
    `Model ${r.model.name} version ${r.model.version}${trained}` +
    (r.admission_id ? ` · admission ${r.admission_id}` : "");
  $("result-disclaimer").textContent = r.disclaimer;
  renderPrintHead(r, trained);
  renderPrintInputs(state.lastRecord || {});
  res.hidden = false;
  res.scrollIntoView({ behavior: "smooth", block: "start" });
}

// ---- the printed result ----------------------------------------------------------------------
function renderPrintHead(r, trained) {
  const now = new Date();
  const stamp = now.toISOString().slice(0, 10) + " " + now.toTimeString().slice(0, 5);
  $("print-meta").textContent =
    `Admission ${r.admission_id} · scored ${stamp} · model ${r.model.name} version ${r.model.version}${trained}`;
}

// The record as sent, compactly: every field given, item answers as one line per scale.
function renderPrintInputs(record) {
  const byName = Object.fromEntries(state.model.catalog.map((f) => [f.name, f]));
  const list = $("print-inputs-list");
  list.replaceChildren();
  const items = new Map();
  for (const [name, value] of Object.entries(record)) {
    const f = byName[name];
    if (f && f.is_item) {
      if (!items.has(f.scale)) items.set(f.scale, []);
      items.get(f.scale).push(`${name.replace(/^.*_/, "")}:${value}`);
      continue;
    }
    const shown = f && f.codes ? fmt(value) : typeof value === "string" ? value : fmt(value);
    list.append(el("li", {}, el("span", { class: "k", text: label(name) + " " }), shown));
  }
  for (const [scale, answers] of items) {
    list.append(el("li", { class: "items-line" },
      el("span", { class: "k", text: label(scale) + " items " }), answers.join(" ")));
  }
}

$("print-btn").addEventListener("click", () => window.print());

function fmt(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(1);
  if (typeof v === "boolean") return v ? "yes" : "no";
  return String(v).replace(/_/g, " ");
}

// ---- case file and weekly check (issue 19) ----------------------------------------------------
// The case file is a JSON download holding the record as sent, the intake result and the weekly
// ratings so far: it lives with the service's clinical records, never on this server.
const CASE_KIND = "alliance-risk case file";
const ITEM_CODES = Array.from({ length: 12 }, (_, i) => "wai_" + String(i + 1).padStart(2, "0"));
const RATERS = ["client", "counsellor"];
const CASE_NOTICE =
  "CLINICAL DATA: this file holds a client's intake record and risk results. Keep it where your " +
  "service keeps clinical records; do not e-mail or share it outside the care team.";

function caseFile(record, admission, ratings, latest) {
  return {
    kind: CASE_KIND,
    format: 1,
    notice: CASE_NOTICE,
    saved_at: new Date().toISOString(),
    model: admission.model,
    record,
    admission_result: admission,
    ratings: ratings || [],
    latest_result: latest || null,
  };
}

function download(obj) {
  const aid = (obj.record && obj.record.admission_id) || "client";
  const blob = new Blob([JSON.stringify(obj, null, 2)], { type: "application/json" });
  const a = el("a", { href: URL.createObjectURL(blob), download: `case-${aid}-clinical-data.json` });
  document.body.append(a);
  a.click();
  setTimeout(() => {
    URL.revokeObjectURL(a.href);
    a.remove();
  }, 0);
}

$("save-case-btn").addEventListener("click", () => {
  if (!state.lastResult || !state.lastRecord) return;
  download(caseFile(state.lastRecord, state.lastResult, [], null));
});

function showTab(name) {
  const weekly = name === "weekly";
  document.body.classList.toggle("mode-weekly", weekly);
  $("tab-intake").setAttribute("aria-selected", String(!weekly));
  $("tab-weekly").setAttribute("aria-selected", String(weekly));
  $("intake-form").hidden = weekly;
  $("result").hidden = weekly || !state.lastResult;
  $("weekly").hidden = !weekly;
}
$("tab-intake").addEventListener("click", () => showTab("intake"));
$("tab-weekly").addEventListener("click", () => showTab("weekly"));

function itemSelect(rater, code) {
  const wrap = el("div", { class: "field item", id: `wrap-${rater}-${code}` });
  wrap.append(el("label", { for: `r-${rater}-${code}` }, code));
  const sel = el("select", { id: `r-${rater}-${code}`, name: `${rater}-${code}` });
  sel.append(el("option", { value: "", text: "—" }));
  for (let v = 1; v <= 7; v++) {
    const words = v === 1 ? " never" : v === 7 ? " always" : "";
    sel.append(el("option", { value: String(v), text: v + words }));
  }
  wrap.append(sel);
  return wrap;
}

function buildRatingInputs() {
  for (const rater of RATERS) {
    const grid = $("items-" + rater);
    grid.replaceChildren(...ITEM_CODES.map((c) => itemSelect(rater, c)));
  }
}
buildRatingInputs();
$("counsellor-rated").addEventListener("change", (ev) => {
  $("items-counsellor").hidden = !ev.target.checked;
});

function caseError(text) {
  $("case-error").textContent = text;
}

$("case-file").addEventListener("change", async (ev) => {
  caseError("");
  const file = ev.target.files && ev.target.files[0];
  if (!file) return;
  let data;
  try {
    data = JSON.parse(await file.text());
  } catch (e) {
    caseError("This file is not a case file (not JSON).");
    return;
  }
  if (!data || data.kind !== CASE_KIND || !data.record || !data.admission_result) {
    caseError("This file is not an alliance-risk case file.");
    return;
  }
  state.case = data;
  state.case.ratings = Array.isArray(data.ratings) ? data.ratings : [];
  renderCaseSummary();
  const rated = state.case.ratings.map((r) => r.week);
  const next = Math.min(3, (rated.length ? Math.max(...rated) : 0) + 1);
  $("week").value = String(next);
  $("weekly-form").hidden = false;
  $("weekly-result").hidden = true;
});

function ratingMeanText(r) {
  if (r.item_mean !== undefined && r.item_mean !== null) return Number(r.item_mean).toFixed(2);
  const vals = ITEM_CODES.map((c, i) => {
    const v = r.items[c];
    if (v === null || v === undefined) return null;
    return i === 3 || i === 9 ? 8 - v : v;
  }).filter((v) => v !== null);
  return (vals.reduce((a, b) => a + b, 0) / vals.length).toFixed(2);
}

function renderCaseSummary() {
  const c = state.case;
  const adm = c.admission_result;
  const box = $("case-summary");
  const rated = c.ratings
    .slice()
    .sort((a, b) => a.week - b.week || RATERS.indexOf(a.rater) - RATERS.indexOf(b.rater))
    .map((r) => `week ${r.week} ${r.rater} ${ratingMeanText(r)}`);
  box.replaceChildren(
    el("p", {}, el("strong", { text: `Admission ${c.record.admission_id}` }),
      ` · admitted ${c.record.admission_date || "?"} · admission risk ${pct(adm.risk)} (${adm.band})`),
    el("p", { class: "small" }, rated.length ? "Ratings so far (item means): " + rated.join("; ") : "No weekly rating yet."),
    el("p", { class: "small muted", text: CASE_NOTICE })
  );
  box.hidden = false;
}

function readRating(rater) {
  const items = {};
  let answered = 0;
  for (const c of ITEM_CODES) {
    const v = $(`r-${rater}-${c}`).value;
    items[c] = v === "" ? null : Number(v);
    if (v !== "") answered++;
  }
  return { items, answered };
}

$("weekly-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  for (const r of RATERS) $("err-rating-" + r).textContent = "";
  $("weekly-errors").hidden = true;
  if (!state.case) return;
  const week = Number($("week").value);
  const fresh = [];
  const raters = ["client"].concat($("counsellor-rated").checked ? ["counsellor"] : []);
  let bad = false;
  for (const rater of raters) {
    const { items, answered } = readRating(rater);
    if (answered < 10) {
      $("err-rating-" + rater).textContent = `${12 - answered} items blank: at most 2 may be blank`;
      bad = true;
    }
    fresh.push({ week, rater, items });
  }
  if (bad) return;
  // This week's ratings replace any the case file held for the same week and rater.
  const kept = state.case.ratings.filter((r) => !(r.week === week && raters.includes(r.rater)));
  const ratings = kept.concat(fresh).filter((r) => r.week <= week);
  const later = kept.filter((r) => r.week > week);
  await weeklyScore(ratings, later);
});

async function weeklyScore(ratings, later) {
  const body = Object.assign({}, state.case.record, { ratings });
  const r = await postScore(body, "weekly-btn", "Updating…");
  if (!r) return;
  if (r.status !== 200) {
    const errs = (r.body && r.body.errors) || [];
    const fe = $("weekly-errors");
    const list = el("ul");
    for (const e of errs) list.append(el("li", { text: `${e.field}: ${e.reason}` }));
    if (!errs.length) list.append(el("li", { text: (r.body && r.body.error) || "HTTP " + r.status }));
    fe.replaceChildren(el("strong", { text: "The server could not update the risk:" }), list);
    fe.hidden = false;
    return;
  }
  state.case.ratings = ratings.concat(later || []);
  state.case.latest_result = r.body;
  renderCaseSummary();
  renderWeekly(r.body);
}

function markerBlock(node, title, m, flagged) {
  node.replaceChildren();
  node.className = "marker" + (flagged ? " flagged" : "");
  node.dataset.flag = String(!!flagged);
  node.append(el("h4", {}, title + ": ", el("span", { class: "marker-state", text: flagged ? "yes" : "no" })));
  node.append(el("p", { class: "small", text: m.why }));
  if (flagged && m.actions && m.actions.length) node.append(actionList(m.actions));
}

function renderWeekly(r) {
  const res = $("weekly-result");
  res.dataset.risk = String(r.risk);
  res.dataset.riskAtAdmission = String(r.risk_at_admission);
  res.dataset.riskRemaining = r.risk_remaining === null ? "" : String(r.risk_remaining);
  res.dataset.asOfWeek = String(r.as_of_week);
  res.dataset.signal = String(r.signal.flag);
  res.dataset.rupture = String(r.rupture.flag);
  $("w-week").textContent = String(r.as_of_week);
  $("w-risk").textContent = pct(r.risk);
  // The updated risk's 95% uncertainty interval (the admission model's refits with draws of the
  // weekly model's parameters), as the intake result shows the admission one.
  setIntervalData(res, r.risk_interval);
  showInterval(r.risk_interval, r.band, $("w-interval"), $("w-scale-interval"));
  const ivAdm = r.risk_interval_at_admission;
  $("w-admission").textContent =
    `At admission: ${pct(r.risk_at_admission)}` + (ivAdm ? ` ${intervalWords(ivAdm)}` : "") +
    ` (${BAND_WORDS[r.band_at_admission] || r.band_at_admission})`;
  const band = $("w-band");
  band.textContent = BAND_WORDS[r.band] || r.band;
  band.className = "band band-" + r.band;
  const scale = res.querySelector(".scale");
  scale.style.setProperty("--pos-mod", 100 * r.bands.moderate_from + "%");
  scale.style.setProperty("--pos-high", 100 * r.bands.high_from + "%");
  $("w-scale-marker").style.left = Math.min(99.5, Math.max(0.5, 100 * r.risk)) + "%";
  $("w-scale-admission").style.left = Math.min(99.5, Math.max(0.5, 100 * r.risk_at_admission)) + "%";
  $("w-remaining").replaceChildren(
    r.risk_remaining === null
      ? "All three weeks are rated: no weeks remain."
      : el("span", {}, `Risk of a low alliance in the weeks still to come (week${r.remaining_weeks.length > 1 ? "s" : ""} ${r.remaining_weeks.join("–")}): `,
          el("strong", { text: pct(r.risk_remaining) }),
          r.risk_remaining_interval
            ? el("span", { class: "remaining-interval", text: ` ${intervalWords(r.risk_remaining_interval)}` })
            : null)
  );
  const ivRem = r.risk_remaining_interval;
  res.dataset.remainingLow = ivRem ? String(ivRem.low) : "";
  res.dataset.remainingHigh = ivRem ? String(ivRem.high) : "";
  markerBlock($("w-signal"), "Not on track", r.signal, r.signal.flag);
  markerBlock($("w-rupture"), "Rupture", r.rupture, r.rupture.flag);
  markerBlock($("w-discrepancy"), "Client–counsellor discrepancy", r.discrepancy, r.discrepancy.flag);
  $("w-ratings").textContent = r.ratings.length
    ? "Ratings used (WAI-S item means, 1–7): " + r.ratings.map((x) => `week ${x.week} ${x.rater} ${x.item_mean.toFixed(2)}`).join("; ")
    : "";

  const list = $("w-drivers");
  list.replaceChildren();
  // Drivers of at least 0.1 points (the intake result lists them all); those not assessed at
  // intake are named in one line.
  const shownDrivers = r.drivers.filter((d) => d.driver === "ratings" || (d.assessed && Math.abs(d.points) >= 0.0005));
  const maxPts = Math.max(0.0001, ...r.drivers.map((d) => Math.abs(d.points)));
  for (const d of shownDrivers) list.append(driverItem(d, maxPts));
  const total = r.drivers.reduce((a, d) => a + d.points, 0);
  const notAssessed = r.drivers.filter((d) => !d.assessed).map((d) => d.label);
  $("w-drivers-total").textContent =
    `All drivers together: ${signed(total)} points = ${pct(r.risk)} − ${pct(r.typical_risk)} ` +
    "(the typical client, rated typically); drivers under 0.1 points are not listed" +
    (notAssessed.length ? `; not assessed at intake: ${notAssessed.join(", ")}.` : ".");

  const acts = $("w-actions");
  acts.replaceChildren();
  const withActions = r.drivers.filter((d) => (d.actions && d.actions.length) || d.what_if);
  for (const d of withActions) {
    const card = el("div", { class: "action-card", "data-driver": d.driver });
    card.append(el("h4", { text: d.label }));
    if (d.actions.length) {
      const ul = el("ul");
      for (const a of d.actions) {
        ul.append(el("li", {}, a.action, el("span", { class: "source", text: ` Source: ${a.source}.` })));
      }
      card.append(ul);
    }
    if (d.what_if) {
      card.append(el("p", { class: "what-if" },
        `If ${d.label.toLowerCase()} were at the typical client's level: `,
        el("strong", { text: pct(d.what_if.risk) }), ` instead of ${pct(d.what_if.instead_of)}.`));
    }
    acts.append(card);
  }
  $("w-actions-block").hidden = withActions.length === 0;
  // The printout names the intake drivers' what-ifs in one line (their actions are on the
  // intake printout); the markers' actions above print in full.
  const whatIfs = withActions
    .filter((d) => d.what_if)
    .map((d) => `${d.label} ${pct(d.what_if.risk)}`);
  $("w-actions-print").textContent = withActions.length
    ? "Modifiable drivers raising the risk: " + withActions.map((d) => d.label).join(", ") +
      " (actions and sources: the intake printout)" +
      (whatIfs.length ? `; the risk if each were at the typical client's level: ${whatIfs.join(", ")}.` : ".")
    : "";
  $("w-notes").textContent = `${r.label_note} ${r.risk_interval_note}`;
  const trained =
    (state.model && state.model.trained_at ? `, trained ${state.model.trained_at.slice(0, 10)}` : "") +
    (state.model && state.model.synthetic_data ? " on SYNTHETIC data" : "");
  $("w-model").textContent = `Model ${r.model.name} version ${r.model.version}${trained} · admission ${r.admission_id}`;
  $("w-disclaimer").textContent = r.disclaimer;
  const now = new Date();
  const stamp = now.toISOString().slice(0, 10) + " " + now.toTimeString().slice(0, 5);
  $("w-print-meta").textContent =
    `Admission ${r.admission_id} · admitted ${state.case.record.admission_date || "?"} · week ${r.as_of_week} check ${stamp} · model ${r.model.name} version ${r.model.version}${trained}`;
  res.hidden = false;
  res.scrollIntoView({ behavior: "smooth", block: "start" });
}

$("w-save-btn").addEventListener("click", () => {
  if (!state.case) return;
  download(caseFile(state.case.record, state.case.admission_result, state.case.ratings, state.case.latest_result));
});
$("w-print-btn").addEventListener("click", () => window.print());

// ---- start -----------------------------------------------------------------------------------
if (state.key) loadModel();
else showAuth("");
