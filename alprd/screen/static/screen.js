// The in-car screen: live reads, health strip, alerts with a tone, officer actions.
// Plain JavaScript, no build step. Every data request goes to a logged endpoint of the daemon.
"use strict";

const csrf = document.querySelector('meta[name="csrf"]').content;
const $ = (id) => document.getElementById(id);
const state = { alert: null, queue: [], tone: null, loadingReads: false, readsAgain: false };
window.alprdScreen = state;  // the browser tests look at the tone's state here

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf } };
  const res = await fetch(path, { credentials: "same-origin", ...opts });
  if (res.status === 401) { location.href = "/login?expired=1"; throw new Error("session ended"); }
  const data = await res.json().catch(() => ({ error: `HTTP ${res.status}` }));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// -- views --------------------------------------------------------------------------
for (const button of document.querySelectorAll("nav button")) {
  button.addEventListener("click", () => {
    for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b === button);
    for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${button.dataset.view}`;
    if (button.dataset.view === "alerts") loadAlerts();
  });
}

function readCard(r, selectable) {
  const card = el("div", { class: "read", "data-read": r.id });
  if (r.crop) card.append(el("img", { src: r.crop, alt: r.plate }));
  card.append(el("div", { class: "plate" }, r.plate));
  const alt = r.candidates.length ? ` (or ${r.candidates.join(", ")})` : "";
  card.append(el("div", { class: "meta" }, `${Math.round(r.confidence * 100)}%${alt}`));
  card.append(el("div", { class: "meta" }, `${r.time} · ${r.camera}`));
  card.append(el("div", { class: "meta" }, r.gps || "no GPS"));
  if (selectable) {
    const box = el("input", { type: "checkbox", value: r.id, class: "pick" });
    card.append(el("label", {}, box, " hold"));
  }
  return card;
}

async function loadReads() {
  if (state.loadingReads) { state.readsAgain = true; return; }
  state.loadingReads = true;
  try {
    const reads = await api("/api/reads");
    $("reads").replaceChildren(...reads.map((r) => readCard(r, false)));
  } catch (err) { banner(err.message); }
  state.loadingReads = false;
  if (state.readsAgain) { state.readsAgain = false; loadReads(); }
}

async function loadHealth() {
  try {
    const { health } = await api("/api/health");
    $("health").replaceChildren(...health.map((h) => el("span", { class: h.level }, `${h.name}: ${h.value}`)));
  } catch (err) { banner(err.message); }
}

async function loadAlerts() {
  const rows = await api("/api/alerts");
  $("alert-list").replaceChildren(...rows.map((a) => {
    const tr = el("tr", { "data-alert": a.id }, el("td", {}, a.time), el("td", {}, a.plate), el("td", {}, a.pattern),
      el("td", {}, a.category), el("td", {}, `${a.priority}`), el("td", {}, a.match_kind), el("td", {}, a.disposition));
    tr.addEventListener("click", () => showAlert(a.id, false));
    return tr;
  }));
}

function banner(text) {
  $("banner").textContent = text;
  $("banner").hidden = !text;
}

// -- the tone -----------------------------------------------------------------------
let audio = null;
function beep(freq, gain, start, length) {
  audio = audio || new (window.AudioContext || window.webkitAudioContext)();
  const osc = audio.createOscillator();
  const vol = audio.createGain();
  osc.type = "square";
  osc.frequency.value = freq;
  vol.gain.value = gain;
  osc.connect(vol).connect(audio.destination);
  osc.start(audio.currentTime + start);
  osc.stop(audio.currentTime + start + length);
}

function startTone(priority) {
  stopTone();
  const urgent = priority === 1;  // priority 1: three loud high beeps, faster
  const play = () => {
    try {
      if (urgent) for (let i = 0; i < 3; i++) beep(1250, 0.9, i * 0.18, 0.12);
      else beep(880, 0.35, 0, 0.25);
    } catch (err) { /* no audio device: the screen still shows the alert */ }
  };
  play();
  state.tone = { priority, timer: setInterval(play, urgent ? 1200 : 2500) };
}

function stopTone() {
  if (state.tone) clearInterval(state.tone.timer);
  state.tone = null;
}
document.addEventListener("click", () => { if (audio && audio.state === "suspended") audio.resume(); });

// -- alerts -------------------------------------------------------------------------
async function showAlert(id, fresh) {
  if (state.alert && state.alert.id !== id && fresh) { state.queue.push(id); return; }
  let a;
  try { a = await api(`/api/alerts/${encodeURIComponent(id)}`); } catch (err) { banner(err.message); return; }
  state.alert = a;
  $("alert-category").textContent = a.category.replace(/_/g, " ");
  $("alert-priority").textContent = `priority ${a.priority}`;
  $("alert-plate").replaceChildren(...[...a.plate].map((c, i) =>
    el("span", a.differences.marks[i] ? { class: "diff" } : {}, c)));
  const diff = a.differences.text ? `: ${a.differences.text}` : "";
  $("alert-match").textContent = `${a.match_words} match to ${a.pattern}${a.state ? " (" + a.state + ")" : ""}${diff}`;
  $("alert-verify").textContent = a.verify;
  for (const [key, img] of [["crop", "alert-crop"], ["context", "alert-context"]]) {
    $(img).hidden = !a[key];
    if (a[key]) $(img).src = a[key];
  }
  $("alert-case").textContent = a.case_number || "-";
  $("alert-note").textContent = a.note || "-";
  $("alert-expires").textContent = a.expires;
  $("alert-time").textContent = `${a.time} · ${a.camera || ""} · read ${Math.round((a.confidence || 0) * 100)}%`;
  $("alert-gps").textContent = a.gps || "no GPS";
  $("alert-source").textContent = a.source || "-";
  $("alert-note-input").value = "";
  showHistory(a);
  $("alert").querySelector(".alert-box").classList.toggle("p1", a.priority === 1);
  $("alert").hidden = false;
  state.shownAt = Date.now();
  if (fresh && !a.disposition) startTone(a.priority);
}

function showHistory(a) {
  $("alert-history").replaceChildren(...a.history.map((h) =>
    el("li", {}, `${h.time}: ${h.disposition.replace(/_/g, " ")} by ${h.user}${h.note ? " - " + h.note : ""}`)));
  for (const b of document.querySelectorAll(".dispositions button")) {
    b.classList.toggle("chosen", b.dataset.d === a.disposition);
  }
}

function closeAlert() {
  stopTone();
  $("alert").hidden = true;
  state.alert = null;
  const next = state.queue.shift();
  if (next) showAlert(next, true);
}

for (const b of document.querySelectorAll(".dispositions button")) {
  b.addEventListener("click", async () => {
    stopTone();
    try {
      const a = await api(`/api/alerts/${encodeURIComponent(state.alert.id)}/disposition`,
        { disposition: b.dataset.d, note: $("alert-note-input").value });
      state.alert = a;
      showHistory(a);
      $("alert-note-input").value = "";  // the note went with that entry
    } catch (err) { banner(err.message); }
  });
}
$("alert-ack").addEventListener("click", stopTone);
$("alert-close").addEventListener("click", closeAlert);

// -- officer actions ------------------------------------------------------------------
function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

function result(id, text, error) {
  $(id).textContent = text;
  $(id).classList.toggle("error", !!error);
}

$("bolo-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = formData(ev.target);
  body.priority = Number(body.priority);
  try {
    const b = await api("/api/bolo", body);
    result("bolo-result", `${b.plate} is on the hotlist (${b.category}, priority ${b.priority}) until ${b.expires}.`);
  } catch (err) { result("bolo-result", err.message, true); }
});

$("search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const reads = await api("/api/search", formData(ev.target));
    result("search-result", `${reads.length} read(s)`);
    $("search-reads").replaceChildren(...reads.map((r) => readCard(r, true)));
    $("hold-form").hidden = !reads.length;
  } catch (err) {
    result("search-result", err.message, true);
    $("search-reads").replaceChildren();
    $("hold-form").hidden = true;
  }
});

$("hold-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const { case: caseNumber, reason } = formData($("search-form"));
  const ids = [...document.querySelectorAll("#search-reads .pick:checked")].map((c) => c.value);
  try {
    const h = await api("/api/hold", { read_ids: ids, case: caseNumber, reason });
    result("hold-result", `hold ${h.hold_id}: ${h.reads} read(s) kept as evidence`);
  } catch (err) { result("hold-result", err.message, true); }
});

$("logout").addEventListener("click", async () => {
  await api("/logout", {}).catch(() => {});
  location.href = "/login";
});

// -- live events ----------------------------------------------------------------------
function listen() {
  const events = new EventSource("/api/events");
  events.addEventListener("open", () => banner(""));
  events.addEventListener("read", loadReads);
  events.addEventListener("alert", (ev) => showAlert(JSON.parse(ev.data).id, true));
  events.addEventListener("expired", () => { location.href = "/login?expired=1"; });
  events.addEventListener("error", () => {
    banner("connection to the daemon lost: retrying");
    loadHealth();  // a session that ended sends the page to the login
  });
}

loadReads();
loadHealth();
setInterval(loadHealth, 3000);
listen();
