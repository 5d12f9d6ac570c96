// painterly web: one page, no build step. The forms come from the server's /forms (which
// reads the library's config dataclasses); the page only shows them and sends the answers.
"use strict";

const TOKEN = document.querySelector('meta[name="painterly-token"]').content;
const ABOUT = {
  style: "Paints the photo with the painting's strokes and colours by optimisation (Gatys et al.): slow, the best pictures. Several paintings blend.",
  fast: "One pass of a trained network: a picture in a second. Several paintings blend.",
  dream: "DeepDream: the network amplifies what it sees in the picture.",
  activations: "What each channel of a layer responds to in your picture.",
  reconstruct: "What survives in a layer: the photo rebuilt from its features, the painting's style from its Gram matrices.",
  features: "Pictures that excite one channel as much as possible (feature visualisation).",
};
// The settings shown first; the rest are under "More settings".
const MAIN = {
  style: ["size", "quality", "style_weight", "preserve_color", "seed"],
  fast: ["strength", "texture", "preserve_color", "work_size", "whiten"],
  dream: ["layers", "octaves", "steps", "step_size", "size"],
  activations: ["layers", "count", "overlay", "reduce"],
  reconstruct: ["size", "iterations"],
  features: ["layer", "channels", "objective", "steps"],
};
const ROLE_LABEL = { photo: "Photo", painting: "Painting", picture: "Picture" };

const state = { styles: [], forms: null, kind: "style", inputs: {}, watched: null, curve: [], jobs: [] };
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c);
  return node;
}

async function api(method, path, body, headers = {}) {
  const options = { method, headers: { "X-Painterly-Token": TOKEN, ...headers } };
  if (body !== undefined) {
    if (body instanceof Blob) options.body = body;
    else { options.body = JSON.stringify(body); options.headers["Content-Type"] = "application/json"; }
  }
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.error ? data.error + (data.hint ? " — " + data.hint : "") : `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return data;
}

function say(text, ok = false) {
  const m = $("#message");
  m.textContent = text || "";
  m.className = ok ? "ok" : "";
}

// -- tabs and forms ----------------------------------------------------------------------

function selectKind(kind) {
  state.kind = kind;
  for (const b of document.querySelectorAll("#tabs button"))
    b.classList.toggle("active", b.dataset.kind === kind);
  $("#about").textContent = ABOUT[kind];
  state.inputs = {};
  renderInputs();
  renderForm();
  say("");
}

function label(name) { return name.replace(/_/g, " "); }

function control(s) {
  const id = "setting-" + s.name;
  const value = s.default === null ? "" : (Array.isArray(s.default) ? s.default.join(", ") : s.default);
  let input;
  if (s.type === "choice") {
    input = el("select", { id, name: s.name }, ...s.choices.map((c) => el("option", { value: c }, c)));
    input.value = value;
  } else if (s.type === "bool") {
    input = el("input", { id, name: s.name, type: "checkbox" });
    input.checked = !!s.default;
  } else if (s.type === "int" || s.type === "float") {
    const slider = s.minimum !== null && s.maximum !== null && s.type === "float";
    // The value goes last: a range input set before its min, max and step clamps and rounds
    // it to the defaults (0 to 100, step 1), which turned 0.7 into 1.
    input = el("input", { id, name: s.name, type: slider ? "range" : "number",
      min: s.minimum, max: s.maximum, step: s.type === "int" ? 1 : (slider ? 0.05 : "any"),
      placeholder: s.optional ? "default" : null });
    input.setAttribute("value", value);
    if (slider) {
      const shown = el("output", { for: id }, String(value));
      input.addEventListener("input", () => { shown.textContent = input.value; });
      return field(s, id, el("span", { class: "slider" }, input, shown));
    }
  } else {
    input = el("input", { id, name: s.name, type: "text", value, placeholder: s.optional ? "default" : null });
  }
  return field(s, id, input);
}

function field(s, id, input) {
  return el("div", { class: "field", title: s.help || "" },
    el("label", { for: id }, label(s.name)), input,
    s.help ? el("small", {}, s.help) : "");
}

function renderForm(values = {}) {
  const form = $("#settings");
  form.replaceChildren();
  const spec = state.forms.kinds[state.kind];
  const shown = spec.settings.filter((s) => !(spec.many_paintings && s.name === "style_weights"));
  const main = shown.filter((s) => MAIN[state.kind].includes(s.name));
  const more = shown.filter((s) => !MAIN[state.kind].includes(s.name));
  main.forEach((s) => form.append(control(s)));
  const details = el("details", {}, el("summary", {}, "More settings"));
  more.forEach((s) => details.append(control(s)));
  form.append(details);
  setValues(values);
}

function setValues(values) {
  for (const [name, v] of Object.entries(values)) {
    const input = document.getElementById("setting-" + name);
    if (!input) continue;
    if (input.type === "checkbox") input.checked = !!v;
    else input.value = v === null ? "" : (Array.isArray(v) ? v.join(", ") : v);
    input.dispatchEvent(new Event("input"));
  }
}

function readForm() {
  const values = {};
  for (const s of state.forms.kinds[state.kind].settings) {
    const input = document.getElementById("setting-" + s.name);
    if (!input) continue;
    if (s.type === "bool") values[s.name] = input.checked;
    else if (s.type === "int" || s.type === "float") values[s.name] = input.value === "" ? (s.optional ? null : s.default) : Number(input.value);
    else values[s.name] = input.value;
  }
  const paintings = state.inputs.painting || [];
  if (state.forms.kinds[state.kind].many_paintings && paintings.length > 1)
    values.style_weights = paintings.map((p) => Number(p.weight));
  return values;
}

// -- pictures ----------------------------------------------------------------------------

function renderInputs() {
  const box = $("#inputs");
  box.replaceChildren();
  const spec = state.forms.kinds[state.kind];
  if (!spec.inputs.length) box.append(el("p", { class: "about" }, "No pictures needed."));
  for (const role of spec.inputs) {
    const many = role === "painting" && spec.many_paintings;
    const picker = el("input", { type: "file", id: "file-" + role, accept: "image/*", multiple: many,
      onchange: (e) => { addFiles(role, [...e.target.files], many); e.target.value = ""; } });
    const zone = el("label", { class: "drop", for: "file-" + role, id: "drop-" + role },
      el("strong", {}, ROLE_LABEL[role] + (many ? "(s)" : "")),
      el("span", {}, " — drop here or click to choose"), picker);
    dropTarget(zone, (files) => addFiles(role, files, many));
    const thumbs = el("div", { class: "thumbs", id: "thumbs-" + role });
    for (const item of state.inputs[role] || []) thumbs.append(thumb(role, item, many));
    const offer = role === "painting" && state.styles.length ? builtins(many) : "";
    box.append(el("div", { class: "role" }, zone, offer, thumbs));
  }
}

function builtins(many) {
  // The paintings painterly ships: a click adds one like an uploaded painting.
  const row = el("div", { class: "builtins" }, el("span", {}, "or a built-in painting:"));
  for (const style of state.styles) {
    row.append(el("button", { type: "button", class: "builtin", "data-name": style.name, title: style.label,
      onclick: () => addBuiltin(style, many) }, el("img", { src: `/styles/${style.name}`, alt: style.label })));
  }
  return row;
}

async function addBuiltin(style, many) {
  const item = { name: style.name, url: `/styles/${style.name}`, id: null, weight: 1 };
  state.inputs.painting = many ? [...(state.inputs.painting || []), item] : [item];
  renderInputs();
  try {
    Object.assign(item, await api("POST", `/uploads/styles/${style.name}`));
  } catch (err) {
    state.inputs.painting = state.inputs.painting.filter((i) => i !== item);
    say(`${style.name}: ${err.message}`);
  }
  renderInputs();
}

function thumb(role, item, many) {
  const remove = el("button", { type: "button", class: "remove", title: "remove",
    onclick: () => { state.inputs[role] = state.inputs[role].filter((i) => i !== item); renderInputs(); } }, "×");
  const card = el("div", { class: "thumb" + (item.id ? "" : " pending") },
    el("img", { src: item.url, alt: item.name }), remove);
  card.append(el("small", {}, item.id ? `${item.width}×${item.height}` : "uploading…"));
  if (many && (state.inputs[role] || []).length > 1) {
    const weight = el("input", { type: "range", min: 0, max: 1, step: 0.05, value: item.weight,
      class: "weight", title: "blend weight",
      oninput: (e) => { item.weight = e.target.value; } });
    card.append(weight);
  }
  return card;
}

function dropTarget(zone, onFiles) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); e.stopPropagation(); zone.classList.remove("over");
    onFiles([...e.dataTransfer.files]);
  });
}

async function addFiles(role, files, many) {
  for (const file of files) {
    const item = { name: file.name, url: URL.createObjectURL(file), id: null, weight: 1 };
    state.inputs[role] = many ? [...(state.inputs[role] || []), item] : [item];
    renderInputs();
    try {
      const up = await api("POST", "/uploads", file, { "Content-Type": "application/octet-stream" });
      Object.assign(item, up);
      say("");
    } catch (err) {
      state.inputs[role] = (state.inputs[role] || []).filter((i) => i !== item);
      say(`${file.name}: ${err.message}`);
    }
    renderInputs();
  }
}

// -- jobs --------------------------------------------------------------------------------

async function start() {
  const spec = state.forms.kinds[state.kind];
  const uploads = [];
  for (const role of spec.inputs) {
    const items = state.inputs[role] || [];
    if (!items.length) return say(`Add a ${role} first.`);
    if (items.some((i) => !i.id)) return say("Wait until the pictures are uploaded.");
    uploads.push(...items.map((i) => i.id));
  }
  try {
    const job = await api("POST", "/jobs", { kind: state.kind, uploads, settings: readForm() });
    state.watched = job.id;
    state.curve = [];
    say(`Queued: ${job.title}`, true);
    refresh();
  } catch (err) { say(err.message); }
}

async function refresh() {
  const [jobs, history] = await Promise.all([api("GET", "/jobs"), api("GET", "/history")]);
  state.jobs = jobs.jobs;
  renderQueue(jobs);
  renderHistory(history.pictures);
}

function renderQueue(info) {
  if (state.connected) {
    $("#connection").textContent = info.ready ? "live" : "live · getting ready…";
    $("#connection").title = info.ready ? "live updates" : "loading the networks; a job started now waits a moment";
  }
  const list = $("#queue");
  list.replaceChildren();
  const active = info.jobs.filter((j) => j.status === "queued" || j.status === "running");
  const ended = info.jobs.filter((j) => !(j.status === "queued" || j.status === "running")).slice(-4).reverse();
  for (const job of [...active, ...ended]) {
    const buttons = [];
    if (job.status === "running") {
      buttons.push(el("button", { class: "interrupt", title: "stop and keep the picture so far",
        onclick: () => cancel(job, true) }, "Interrupt"));
      buttons.push(el("button", { class: "abort", title: "stop and keep nothing",
        onclick: () => cancel(job, false) }, "Abort"));
    } else if (job.status === "queued") {
      buttons.push(el("button", { class: "abort", onclick: () => cancel(job, false) }, "Remove"));
    }
    const what = job.status === "failed" ? `failed: ${job.error}` : job.status;
    list.append(el("li", { class: "job " + job.status, "data-id": job.id },
      el("span", { class: "title" }, job.title), el("span", { class: "status" }, what), ...buttons));
    if (job.status === "running" && state.watched !== job.id) { state.watched = job.id; state.curve = []; }
  }
  const watched = info.jobs.find((j) => j.id === state.watched);
  if (watched && !["queued", "running"].includes(watched.status)) {
    const where = watched.total ? ` at step ${watched.step}/${watched.total}` : "";
    $("#progress-text").textContent = watched.status === "failed" ? `${watched.title}: failed — ${watched.error}`
      : `${watched.title}: ${watched.status}${watched.status === "done" ? "" : where}`;
  }
  if (!list.children.length) list.append(el("li", { class: "empty" }, "Nothing waiting."));
  if (info.waiting > 0) list.append(el("li", { class: "empty" }, `${info.waiting} waiting of at most ${info.max_queue}`));
}

async function cancel(job, keep) {
  try {
    await api(keep ? "POST" : "DELETE", keep ? `/jobs/${job.id}/interrupt` : `/jobs/${job.id}`);
  } catch (err) { say(err.message); }
  refresh();
}

function seconds(s) {
  if (s === null || s === undefined) return "…";
  return s < 90 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function showProgress(p) {
  if (p.id !== state.watched) return;
  $("#progress-bar").style.width = p.total ? `${(100 * p.step) / p.total}%` : "0";
  $("#progress-text").textContent = `${p.title} — step ${p.step}/${p.total} · ${p.stage} · ` +
    `${seconds(p.elapsed)} elapsed · ${p.eta === null ? "estimating" : seconds(p.eta) + " left"}`;
  $("#losses").textContent = Object.entries(p.losses).map(([k, v]) => `${k} ${Number(v).toPrecision(4)}`).join(" · ");
  // The curve follows the job's total (or its one objective), not the sum of its parts.
  const name = "total" in p.losses ? "total" : Object.keys(p.losses)[0];
  const value = p.losses[name];
  if (Number.isFinite(value) && value > 0) { state.curveName = name; state.curve.push(value); drawCurve(); }
}

function drawCurve() {
  const canvas = $("#curve"), g = canvas.getContext("2d");
  const values = state.curve.map((v) => Math.log10(v));
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (values.length < 2) return;
  const lo = Math.min(...values), hi = Math.max(...values), span = hi - lo || 1;
  g.strokeStyle = "#b0502c"; g.lineWidth = 2; g.beginPath();
  values.forEach((v, i) => {
    const x = (i / (values.length - 1)) * (canvas.width - 4) + 2;
    const y = canvas.height - 4 - ((v - lo) / span) * (canvas.height - 8);
    i ? g.lineTo(x, y) : g.moveTo(x, y);
  });
  g.stroke();
  g.fillStyle = "#666"; g.font = "11px sans-serif";
  g.textAlign = "right";
  g.fillText(`${state.curveName} (log scale)`, canvas.width - 6, 12);
}

function showPreview(p) {
  if (p.id !== state.watched) return;
  $("#preview").src = "data:image/jpeg;base64," + p.jpeg;
  $("#preview").dataset.step = p.step;
  $("#preview-caption").textContent = `step ${p.step}`;
}

// -- history -----------------------------------------------------------------------------

function renderHistory(pictures) {
  const box = $("#history");
  box.replaceChildren();
  if (!pictures.length) box.append(el("p", { class: "about" }, "Finished pictures appear here, with their settings."));
  for (const pic of pictures) {
    const src = `/outputs/${pic.id}`;
    const actions = el("div", { class: "actions" },
      el("a", { class: "download", href: `${src}?download=1`, download: "" }, "Download"),
      el("button", { class: "again", onclick: () => useAgain(pic.kind, pic.settings) }, "Use these settings"));
    if (pic.resumable) actions.append(el("button", { class: "resume", onclick: () => resume(pic) }, "Resume"));
    actions.append(el("button", { class: "forget", onclick: () => forget(pic) }, "Delete"));
    box.append(el("div", { class: "item " + pic.status, "data-id": pic.id },
      el("a", { href: src, target: "_blank", rel: "noopener" }, el("img", { src, alt: pic.title, loading: "lazy" })),
      el("div", { class: "caption" }, `${pic.title}${pic.status === "interrupted" ? " (interrupted)" : ""} · ${seconds(pic.seconds)}`),
      actions));
    if (pic.id === state.watched && pic.status === "done") {
      $("#preview").src = src;
      $("#preview-caption").textContent = `${pic.title}: done in ${seconds(pic.seconds)}`;
    }
  }
}

function useAgain(kind, settings) {
  selectKind(kind);
  setValues(settings);
  const paintings = settings.style_weights;
  say("Settings restored" + (paintings && paintings.length ? " (blend weights apply when you add the paintings)" : "") + ".", true);
  window.scrollTo({ top: 0, behavior: "smooth" });
}

async function resume(pic) {
  // The server still has the pictures the job started with (uploads are kept a day).
  try {
    const job = await api("POST", `/history/${pic.id}/resume`, {});
    state.watched = job.id; state.curve = [];
    say("Resuming.", true);
  } catch (err) { say(err.message); }
  refresh();
}

async function forget(pic) {
  try { await api("DELETE", `/history/${pic.id}`); } catch (err) { say(err.message); }
  refresh();
}

async function restoreFrom(files) {
  for (const file of files) {
    try {
      const found = await api("POST", "/settings", file, { "Content-Type": "application/octet-stream" });
      useAgain(found.kind, found.settings);
    } catch (err) { say(`${file.name}: ${err.message}`); }
  }
}

// -- events ------------------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/events?token=${encodeURIComponent(TOKEN)}`);
  socket.onopen = () => {
    state.connected = true;
    $("#connection").textContent = "live"; $("#connection").className = "on"; refresh();
  };
  socket.onclose = () => {
    state.connected = false;
    $("#connection").textContent = "reconnecting…"; $("#connection").className = "";
    setTimeout(connect, 1000);
  };
  socket.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "queue") refresh();
    else if (m.type === "progress") showProgress(m);
    else if (m.type === "preview") showPreview(m);
  };
}

async function main() {
  state.forms = await api("GET", "/forms");
  state.styles = (await api("GET", "/styles")).styles;
  for (const b of document.querySelectorAll("#tabs button"))
    b.addEventListener("click", () => selectKind(b.dataset.kind));
  $("#start").addEventListener("click", (e) => { e.preventDefault(); start(); });
  $("#defaults").addEventListener("click", () => renderForm());
  $("#settings").addEventListener("submit", (e) => { e.preventDefault(); start(); });
  dropTarget($("#restore"), restoreFrom);
  // A painterly PNG dropped anywhere else on the page also restores its settings.
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => { e.preventDefault(); restoreFrom([...e.dataTransfer.files]); });
  selectKind("style");
  connect();
}

main().catch((err) => say(err.message));
