/* restyle studio: the page. Vanilla JS, no build step, nothing loaded from elsewhere.
 *
 * Everything the form shows comes from the server: /api/methods (each method's typed
 * parameters become controls), /api/models (style names of trained networks),
 * /api/status (upload limits). Jobs are submitted to /api/jobs and followed with
 * server-sent events, or by polling when EventSource is unavailable or keeps failing.
 */
"use strict";

/* ------------------------------------------------------------------ pure logic
 * (no DOM: exposed as window.studioLogic so tests can check it in a browser) */

const TASK_LABELS = { transfer: "Style transfer", texture: "Texture synthesis", dream: "Deep dream" };

/** Which control a parameter gets: toggle, select, slider, number, text (or mask). */
function controlKind(p) {
  if (p.mask) return (p.keywords || []).length ? "select" : "mask";  // e.g. a field or "etf"
  if (p.type === "bool") return "toggle";
  if (p.choices && p.choices.length) return "select";
  const bounded = p.min !== undefined && p.min !== null && p.max !== undefined && p.max !== null;
  if (bounded && p.type === "float" && p.max - p.min <= 100) return "slider";
  if (bounded && p.type === "int" && p.max - p.min <= 200) return "slider";
  if (p.type === "int" || p.type === "float") return "number";
  return "text";
}

function sliderStep(p) {
  if (p.type === "int") return 1;
  const range = p.max - p.min;
  return range <= 1 ? 0.01 : range <= 10 ? 0.05 : range <= 100 ? 0.5 : 1;
}

/** A control's raw value as the parameter's type (NaN for a bad number). */
function coerce(p, raw) {
  if (p.type === "bool") return raw === true || raw === "true";
  if (p.type === "int") {
    if (raw === "" || raw === null) return NaN;
    const v = Number(raw);
    return Number.isInteger(v) ? v : NaN;
  }
  if (p.type === "float") return raw === "" || raw === null ? NaN : Number(raw);
  return String(raw ?? "");
}

/** Why a value is not acceptable (the server checks again), or null. */
function checkValue(p, v) {
  const flag = p.name.replace(/_/g, " ");
  if (p.type === "int" || p.type === "float") {
    if (!Number.isFinite(v)) return `${flag} must be ${p.type === "int" ? "a whole number" : "a number"}`;
    if (p.min !== undefined && p.min !== null && v < p.min) return `${flag} must be at least ${p.min}`;
    if (p.max !== undefined && p.max !== null && v > p.max) return `${flag} must be at most ${p.max}`;
  }
  if (p.choices && p.choices.length && !p.choices.includes(v)) return `${flag} must be one of ${p.choices.join(", ")}`;
  return null;
}

/** The parameters whose value differs from the default (what the job sends). */
function changedParams(params, values) {
  const out = {};
  for (const p of params) {
    if ((p.mask && !(p.keywords || []).length) || !(p.name in values)) continue;
    const v = values[p.name];
    if (v !== p.default) out[p.name] = v;
  }
  return out;
}

function humanize(name) {
  const s = name.replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function formatNumber(x) {
  if (x === null || x === undefined) return "–";
  const a = Math.abs(x);
  if (a !== 0 && (a < 0.001 || a >= 1e5)) return x.toExponential(2);
  return Number(x.toPrecision(3)).toString();
}

function formatSeconds(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${Math.round(s - 60 * m)} s`;
}

/** Progress as a fraction in [0, 1], or null when unknown (one-pass, queued). */
function progressFraction(job) {
  if (job.status === "done") return 1;
  const p = job.progress;
  if (p && p.remaining !== undefined && p.elapsed !== undefined) {  // a time budget
    return Math.min(1, p.elapsed / Math.max(1e-6, p.elapsed + p.remaining));
  }
  if (!p || !p.steps) return null;
  return Math.min(1, p.step / p.steps);
}

function statusText(job) {
  switch (job.status) {
    case "queued": return job.queue_position ? `Queued (#${job.queue_position})` : "Queued";
    case "running":
      if (job.cancel_requested) return "Cancelling…";
      return job.family === "image-optimization" ? "Optimizing" : "Running";
    case "done": return "Done";
    case "cancelled": return job.partial ? "Cancelled (partial result kept)" : "Cancelled";
    case "failed": return job.interrupted ? "Interrupted" : "Failed";
    default: return job.status;
  }
}

/** The mask layers a method asks for, given the current style list. */
function maskTargets(method, styles) {
  const out = [];
  for (const m of method.masks || []) {
    if (m.per_style) {
      styles.forEach((s, i) => out.push({ key: `${m.name}:${s.uid}`, field: m.name, on: m.on, style: s,
        kind: m.kind || "mask", label: `${m.name} · style ${i + 1}${s.file ? ` (${s.file.name})` : ""}`, help: m.help }));
    } else {
      out.push({ key: `${m.name}:0`, field: m.name, on: m.on, style: null, kind: m.kind || "mask", label: m.name, help: m.help });
    }
  }
  return out;
}

window.studioLogic = { controlKind, sliderStep, coerce, checkValue, changedParams, humanize,
  formatNumber, formatSeconds, progressFraction, statusText, maskTargets };

/* ------------------------------------------------------------------ DOM helpers */

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

let toastTimer = null;
function toast(message) {
  let t = document.querySelector(".toast");
  if (!t) { t = el("div", { class: "toast", role: "status" }); document.body.append(t); }
  t.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => t.remove(), 4000);
}

async function api(path, options = {}) {
  const res = await fetch(path, options);
  let body = null;
  const type = res.headers.get("content-type") || "";
  if (type.includes("application/json")) body = await res.json();
  if (!res.ok) {
    const err = new Error((body && body.error) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    err.retryAfter = Number(res.headers.get("Retry-After")) || null;
    throw err;
  }
  return body;
}

/* ------------------------------------------------------------------ state */

const S = {
  methods: [], byName: {}, models: null, limits: null, method: null,
  content: null,          // {file, url, img}
  styles: [],             // [{uid, file, url, img, weight}]
  names: {},              // model -> {style: {on, weight}}
  values: {},             // method -> {param: value}
  masks: {},              // target key -> {canvas, painted, base}
  maskTarget: null, maskMode: "paint",
  jobId: null, job: null, es: null, pollTimer: null, sseErrors: 0,
  jobs: [], compare: JSON.parse(localStorage.getItem("restyle.compare") || "[]"),
  previewStep: null, uid: 0,
};

/* ------------------------------------------------------------------ method & params */

function renderMethods() {
  const select = $("method");
  select.textContent = "";
  const groups = {};
  for (const m of S.methods) {
    const label = TASK_LABELS[m.task] || humanize(m.task);
    if (!groups[label]) groups[label] = select.appendChild(el("optgroup", { label }));
    groups[label].append(el("option", { value: m.name,
      text: `${m.name} — ${m.live_preview ? "live preview" : "one pass"}` }));
  }
  const saved = localStorage.getItem("restyle.method");
  select.value = S.byName[saved] ? saved
    : (S.byName.anytime ? "anytime" : S.byName.gatys ? "gatys" : S.methods[0].name);
  selectMethod(select.value);
}

function selectMethod(name) {
  S.method = S.byName[name];
  localStorage.setItem("restyle.method", name);
  const m = S.method;
  if (!S.values[name]) S.values[name] = {};
  $("method-summary").textContent = m.summary;
  const badges = $("method-badges");
  badges.textContent = "";
  badges.append(el("span", { class: `badge ${m.live_preview ? "live" : ""}`,
    text: m.live_preview ? "streams a live preview" : "one pass: result when ready" }));
  badges.append(el("span", { class: "badge", text: TASK_LABELS[m.task] || m.task }));

  // inputs this task takes
  const wants = m.inputs;
  $("content-card").hidden = !wants.content;
  $("content-title").textContent = wants.content === "content" ? "Content photo" : "Input image";
  $("style-card").hidden = !wants.styles;
  const byName = m.style_kind === "name";
  $("style-images").hidden = byName;
  $("style-names").hidden = !byName;
  $("style-title").textContent = byName ? "Built-in model styles"
    : wants.styles === "exemplar" ? "Texture exemplars" : "Styles";
  if (byName) renderModels();
  renderParams();
  renderStyles();
  renderMasks();
  clearFormError();
  $("run").disabled = !!m.unavailable;
  if (m.unavailable) showFormError(`${m.name} cannot run in the studio yet: ${m.unavailable}`);
}

function paramValue(p) {
  const vals = S.values[S.method.name];
  return p.name in vals ? vals[p.name] : p.default;
}

function setParam(p, value, field) {
  S.values[S.method.name][p.name] = value;
  if (field) field.classList.toggle("changed", value !== p.default);
}

function renderParams() {
  const primary = $("params-primary"), advanced = $("params-advanced");
  primary.textContent = "";
  advanced.textContent = "";
  const m = S.method;
  for (const p of m.params) {
    if (p.mask && !(p.keywords || []).length) continue;  // painted in the mask panel
    if (m.style_kind === "name" && p.name === "model") continue;  // the model picker sets it
    (p.primary ? primary : advanced).append(paramControl(p));
  }
  $("params-advanced-box").hidden = !advanced.children.length;
}

function paramControl(p) {
  const kind = controlKind(p);
  const value = paramValue(p);
  const id = `param-${p.name}`;
  const help = el("p", { class: "help", text: p.help || "" });
  let field;
  if (kind === "toggle") {
    const input = el("input", { type: "checkbox", id, role: "switch" });
    input.checked = !!value;
    field = el("div", { class: "field", "data-param": p.name },
      el("label", { class: "switch", for: id }, el("span", { text: humanize(p.name) }), input), help);
    input.addEventListener("change", () => setParam(p, input.checked, field));
  } else if (kind === "select") {
    const select = el("select", { id });
    const choices = p.choices && p.choices.length ? p.choices : ["", ...p.keywords];
    for (const c of choices) {
      select.append(el("option", { value: String(c), text: String(c) || "painted (mask panel) or none" }));
    }
    select.value = String(value);
    field = el("div", { class: "field", "data-param": p.name },
      el("label", { for: id, class: "field-head" }, el("span", { text: humanize(p.name) })), select, help);
    select.addEventListener("change", () => setParam(p, coerce(p, select.value), field));
  } else if (kind === "slider") {
    const input = el("input", { type: "range", id, min: p.min, max: p.max, step: sliderStep(p) });
    input.value = value;
    const out = el("output", { for: id, text: formatNumber(Number(value)) });
    field = el("div", { class: "field", "data-param": p.name },
      el("label", { for: id, class: "field-head" }, el("span", { text: humanize(p.name) }), out), input, help);
    input.addEventListener("input", () => {
      const v = coerce(p, input.value);
      out.textContent = formatNumber(v);
      setParam(p, v, field);
    });
  } else {
    const attrs = { id, type: kind === "number" ? "number" : "text" };
    if (kind === "number") {
      attrs.step = p.type === "int" ? 1 : "any";
      if (p.min !== undefined && p.min !== null) attrs.min = p.min;
      if (p.max !== undefined && p.max !== null) attrs.max = p.max;
      attrs.inputmode = p.type === "int" ? "numeric" : "decimal";
    } else if (p.metavar) {
      attrs.placeholder = p.metavar;
    }
    const input = el("input", attrs);
    input.value = value;
    field = el("div", { class: "field", "data-param": p.name },
      el("label", { for: id, class: "field-head" }, el("span", { text: humanize(p.name) })), input, help);
    input.addEventListener("input", () => setParam(p, coerce(p, input.value), field));
  }
  field.classList.toggle("changed", value !== p.default);
  return field;
}

/* ------------------------------------------------------------------ images */

function loadImage(file) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => resolve({ file, url, img });
    img.onerror = () => { URL.revokeObjectURL(url); reject(new Error(`${file.name} is not an image this browser can read`)); };
    img.src = url;
  });
}

function checkFile(file) {
  if (S.limits && file.size > S.limits.max_file_bytes)
    throw new Error(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MiB; the studio accepts up to ${Math.round(S.limits.max_file_bytes / 2 ** 20)} MiB`);
}

async function setContent(file) {
  try {
    checkFile(file);
    const loaded = await loadImage(file);
    if (S.content) URL.revokeObjectURL(S.content.url);
    S.content = loaded;
    const thumb = $("content-thumb");
    thumb.src = loaded.url;
    thumb.hidden = false;
    $("content-name").textContent = `${file.name} · ${loaded.img.naturalWidth}×${loaded.img.naturalHeight}`;
    for (const key of Object.keys(S.masks)) if (S.masks[key].on === "content") delete S.masks[key];
    renderMasks();
    clearFormError();
  } catch (e) { showFormError(e.message); }
}

async function addStyles(files) {
  for (const file of files) {
    try {
      checkFile(file);
      const loaded = await loadImage(file);
      S.styles.push({ ...loaded, uid: ++S.uid, weight: 1 });
    } catch (e) { showFormError(e.message); }
  }
  renderStyles();
  renderMasks();
}

function renderStyles() {
  const list = $("style-list");
  list.textContent = "";
  const several = S.styles.length > 1;
  S.styles.forEach((s, i) => {
    const out = el("output", { text: s.weight.toFixed(2) });
    const slider = el("input", { type: "range", min: 0, max: 1, step: 0.05, "aria-label": `weight of style ${i + 1}` });
    slider.value = s.weight;
    slider.addEventListener("input", () => { s.weight = Number(slider.value); out.textContent = s.weight.toFixed(2); });
    const remove = el("button", { type: "button", class: "icon-btn", title: "remove", "aria-label": `remove style ${i + 1}`,
      onclick: () => {
        URL.revokeObjectURL(s.url);
        S.styles.splice(S.styles.indexOf(s), 1);
        for (const key of Object.keys(S.masks)) if (key.endsWith(`:${s.uid}`)) delete S.masks[key];
        renderStyles(); renderMasks();
      } }, "×");
    list.append(el("li", { class: "style-item" }, el("img", { src: s.url, alt: "" }),
      el("div", {}, el("div", { class: "name", text: s.file.name }),
        several ? el("div", { class: "weight" }, slider, out) : el("div", { class: "muted", text: "add more styles to blend" })),
      remove));
  });
}

/* ------------------------------------------------------------------ model styles */

async function renderModels() {
  if (!S.models) {
    try { S.models = await api("/api/models"); } catch (e) { S.models = { models: [], folder: "" }; }
  }
  const select = $("model-select"), list = $("name-list"), note = $("models-note");
  const models = S.models.models;
  $("model-field").hidden = !models.length;
  if (!models.length) {
    note.textContent = "";
    note.append("No style network is installed yet. Train one with ",
      el("code", { text: "restyle train style PAINTING.jpg … --export models/NAME.safetensors" }),
      ` (models folder: ${S.models.folder}).`);
    list.textContent = "";
    return;
  }
  note.textContent = "Styles the trained network knows; tick several to blend them.";
  const current = S.values[S.method.name].model;
  select.textContent = "";
  for (const m of models) select.append(el("option", { value: m.name, text: `${m.name} (${m.styles.length} styles)` }));
  select.value = models.some((m) => m.name === current) ? current : models[0].name;
  S.values[S.method.name].model = select.value;
  select.onchange = () => { S.values[S.method.name].model = select.value; renderNameList(); };
  renderNameList();
}

function renderNameList() {
  const model = S.models.models.find((m) => m.name === $("model-select").value);
  const list = $("name-list");
  list.textContent = "";
  if (!model) return;
  const state = S.names[model.name] || (S.names[model.name] = {});
  model.styles.forEach((name, i) => {
    const st = state[name] || (state[name] = { on: i === 0, weight: 1 });
    const box = el("input", { type: "checkbox" });
    box.checked = st.on;
    const out = el("output", { text: st.weight.toFixed(2) });
    const slider = el("input", { type: "range", min: 0, max: 1, step: 0.05, "aria-label": `weight of ${name}` });
    slider.value = st.weight;
    slider.disabled = !st.on;
    box.addEventListener("change", () => { st.on = box.checked; slider.disabled = !st.on; });
    slider.addEventListener("input", () => { st.weight = Number(slider.value); out.textContent = st.weight.toFixed(2); });
    list.append(el("li", { class: "style-item name-item" },
      el("label", {}, box, el("span", { text: name })),
      el("div", { class: "weight" }, slider, out)));
  });
}

/* ------------------------------------------------------------------ masks */

function currentTargets() { return S.method ? maskTargets(S.method, S.styles) : []; }

function renderMasks() {
  const m = S.method;
  const note = $("mask-note"), editor = $("mask-editor");
  if (!m) return;
  if (!m.masks.length) {
    const withMasks = S.methods.filter((x) => x.masks.length).map((x) => x.name);
    note.textContent = `${m.name} has no mask parameter, so it styles the whole image.` +
      (withMasks.length ? ` Regional styles: ${withMasks.join(", ")}.` : " No method takes masks yet.");
    editor.hidden = true;
    return;
  }
  note.textContent = m.masks.some((x) => x.kind === "field")
    ? "Paint or upload the images this method takes: masks are white inside; a stroke field is a direction per pixel, its hue twice the angle (red horizontal, yellow-green 45°, cyan vertical, violet 135°), unpainted = no direction."
    : m.masks.some((x) => x.kind === "map")
    ? "Paint or upload the images this method takes: masks are white inside; maps label regions by colour."
    : "Paint where a style applies (or upload a black-and-white mask): white is inside.";
  editor.hidden = false;
  const select = $("mask-target");
  const targets = currentTargets();
  const previous = S.maskTarget;
  select.textContent = "";
  for (const t of targets) select.append(el("option", { value: t.key, text: t.label }));
  if (!targets.length) {
    select.append(el("option", { value: "", text: "add style images to paint one mask per style" }));
    S.maskTarget = null;
  } else {
    S.maskTarget = targets.some((t) => t.key === previous) ? previous : targets[0].key;
    select.value = S.maskTarget;
  }
  drawMask();
}

function maskBase(t) {
  return t.on === "style" ? (t.style && t.style.img) : (S.content && S.content.img);
}

function maskLayer(t) {
  const base = maskBase(t);
  if (!base) return null;
  let layer = S.masks[t.key];
  if (!layer || layer.base !== base) {
    const scale = Math.min(1, 1024 / Math.max(base.naturalWidth, base.naturalHeight));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(base.naturalWidth * scale));
    canvas.height = Math.max(1, Math.round(base.naturalHeight * scale));
    layer = S.masks[t.key] = { canvas, base, painted: false, on: t.on, field: t.field };
  }
  return layer;
}

function drawMask() {
  const canvas = $("mask-canvas"), empty = $("mask-empty");
  const t = currentTargets().find((x) => x.key === S.maskTarget);
  $("mask-help").textContent = t ? t.help : "";
  const isMap = !!t && (t.kind === "map" || t.kind === "field");  // painted in colour
  $("mask-color-field").hidden = !isMap;
  $("mask-invert").hidden = isMap;
  const layer = t ? maskLayer(t) : null;
  if (!layer) {
    canvas.width = 0; canvas.height = 0;
    empty.textContent = t && t.on === "style" ? "Add the style image to paint on it." : "Add a content photo to paint on it.";
    return;
  }
  empty.textContent = "";
  canvas.width = layer.canvas.width;
  canvas.height = layer.canvas.height;
  // shown as large as the panel allows (small photos too), keeping the aspect ratio
  const room = $("mask-stage").clientWidth || 320;
  const k = Math.min(room / canvas.width, 360 / canvas.height);
  canvas.style.width = `${Math.round(canvas.width * k)}px`;
  canvas.style.height = `${Math.round(canvas.height * k)}px`;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(layer.base, 0, 0, canvas.width, canvas.height);
  if (isMap) {  // a semantic map: its colours over the image
    ctx.globalAlpha = 0.65;
    ctx.drawImage(layer.canvas, 0, 0);
    ctx.globalAlpha = 1;
    return;
  }
  // outside the region slightly darkened, inside tinted with the accent colour
  ctx.fillStyle = "rgba(0,0,0,0.35)";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  const tint = document.createElement("canvas");
  tint.width = canvas.width; tint.height = canvas.height;
  const tc = tint.getContext("2d");
  tc.drawImage(layer.base, 0, 0, tint.width, tint.height);
  tc.globalCompositeOperation = "destination-in";
  tc.drawImage(layer.canvas, 0, 0);
  tc.globalCompositeOperation = "source-atop";
  tc.fillStyle = "rgba(231,160,74,0.45)";
  tc.fillRect(0, 0, tint.width, tint.height);
  ctx.drawImage(tint, 0, 0);
}

function activeTarget() { return currentTargets().find((x) => x.key === S.maskTarget) || null; }
function activeLayer() { const t = activeTarget(); return t ? maskLayer(t) : null; }
function brushColor() { const t = activeTarget(); return t && (t.kind === "map" || t.kind === "field") ? $("mask-color").value : "#fff"; }

function setupMaskPainter() {
  const canvas = $("mask-canvas");
  let last = null;
  const pos = (e) => {
    const r = canvas.getBoundingClientRect();
    return { x: (e.clientX - r.left) * canvas.width / r.width, y: (e.clientY - r.top) * canvas.height / r.height,
      scale: canvas.width / r.width };
  };
  const stroke = (a, b) => {
    const layer = activeLayer();
    if (!layer) return;
    const ctx = layer.canvas.getContext("2d");
    ctx.globalCompositeOperation = S.maskMode === "erase" ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = brushColor();
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.lineWidth = Number($("mask-brush").value) * b.scale;
    ctx.beginPath();
    ctx.moveTo(a.x, a.y);
    ctx.lineTo(b.x + 0.01, b.y);
    ctx.stroke();
    layer.painted = true;
    drawMask();
  };
  canvas.addEventListener("pointerdown", (e) => {
    if (!activeLayer()) return;
    canvas.setPointerCapture(e.pointerId);
    last = pos(e);
    stroke(last, last);
  });
  canvas.addEventListener("pointermove", (e) => { if (last) { const p = pos(e); stroke(last, p); last = p; } });
  const end = () => { last = null; };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);

  const mode = (m) => { S.maskMode = m; $("mask-paint").classList.toggle("on", m === "paint"); $("mask-erase").classList.toggle("on", m === "erase"); };
  $("mask-paint").onclick = () => mode("paint");
  $("mask-erase").onclick = () => mode("erase");
  $("mask-target").onchange = () => { S.maskTarget = $("mask-target").value; drawMask(); };
  const edit = (fn) => () => { const layer = activeLayer(); if (!layer) return; fn(layer); drawMask(); };
  $("mask-fill").onclick = edit((l) => { const c = l.canvas.getContext("2d"); c.globalCompositeOperation = "source-over"; c.fillStyle = brushColor(); c.fillRect(0, 0, l.canvas.width, l.canvas.height); l.painted = true; });
  $("mask-clear").onclick = edit((l) => { l.canvas.getContext("2d").clearRect(0, 0, l.canvas.width, l.canvas.height); l.painted = false; });
  $("mask-invert").onclick = edit((l) => {
    const inv = document.createElement("canvas");
    inv.width = l.canvas.width; inv.height = l.canvas.height;
    const c = inv.getContext("2d");
    c.fillStyle = "#fff"; c.fillRect(0, 0, inv.width, inv.height);
    c.globalCompositeOperation = "destination-out";
    c.drawImage(l.canvas, 0, 0);
    const lc = l.canvas.getContext("2d");
    lc.globalCompositeOperation = "copy";
    lc.drawImage(inv, 0, 0);
    lc.globalCompositeOperation = "source-over";
    l.painted = true;
  });
  $("mask-upload").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    const layer = activeLayer();
    if (!file || !layer) return;
    try {
      const { img, url } = await loadImage(file);
      const w = layer.canvas.width, h = layer.canvas.height;
      const tmp = document.createElement("canvas");
      tmp.width = w; tmp.height = h;
      const tc = tmp.getContext("2d");
      tc.drawImage(img, 0, 0, w, h);
      URL.revokeObjectURL(url);
      if (["map", "field"].includes(activeTarget().kind)) {  // maps and fields keep their colours
        const lc = layer.canvas.getContext("2d");
        lc.clearRect(0, 0, w, h);
        lc.drawImage(tmp, 0, 0);
        layer.painted = true;
        drawMask();
        return;
      }
      const data = tc.getImageData(0, 0, w, h);
      const px = data.data;
      for (let i = 0; i < px.length; i += 4) {   // luminance (times alpha) becomes coverage
        const lum = (0.299 * px[i] + 0.587 * px[i + 1] + 0.114 * px[i + 2]) * px[i + 3] / 255;
        px[i] = px[i + 1] = px[i + 2] = 255;
        px[i + 3] = lum;
      }
      layer.canvas.getContext("2d").putImageData(data, 0, 0);
      layer.painted = true;
      drawMask();
    } catch (err) { showFormError(err.message); }
  });
}

/** The painted layer as an opaque black-and-white PNG (white = inside). */
function maskBlob(layer) {
  const out = document.createElement("canvas");
  out.width = layer.canvas.width; out.height = layer.canvas.height;
  const c = out.getContext("2d");
  c.fillStyle = "#000"; c.fillRect(0, 0, out.width, out.height);
  c.drawImage(layer.canvas, 0, 0);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}

/* ------------------------------------------------------------------ submit */

function showFormError(message) { $("form-error").textContent = message; }
function clearFormError() { $("form-error").textContent = ""; }

async function buildForm() {
  const m = S.method;
  const form = new FormData();
  form.append("method", m.name);
  const values = S.values[m.name];
  for (const p of m.params) {
    if ((p.mask && !(p.keywords || []).length) || !(p.name in values)) continue;
    const problem = checkValue(p, values[p.name]);
    if (problem) throw new Error(problem);
  }
  form.append("params", JSON.stringify(changedParams(m.params, values)));
  if (m.inputs.content) {
    // content_required false: the method may do without (mrf paints its target map alone)
    if (!S.content && m.content_required !== false) throw new Error(m.inputs.content === "content" ? "Add a content photo first." : "Add an input image first.");
    if (S.content) form.append("content", S.content.file, S.content.file.name);
  }
  if (m.inputs.styles) {
    if (m.style_kind === "name") {
      const model = S.models && S.models.models.find((x) => x.name === values.model);
      if (!model) throw new Error("No style network is installed: see the note under Built-in model styles.");
      const state = S.names[model.name] || {};
      const chosen = model.styles.filter((n) => state[n] && state[n].on);
      if (!chosen.length) throw new Error("Tick at least one style of the model.");
      const weights = chosen.map((n) => state[n].weight);
      if (weights.every((w) => w === 0)) throw new Error("Give at least one style a weight above 0.");
      form.append("style_names", JSON.stringify(chosen));
      form.append("style_weights", JSON.stringify(weights));
    } else {
      if (!S.styles.length) throw new Error(m.inputs.styles === "exemplar" ? "Add an exemplar image first." : "Add a style image first.");
      if (S.styles.length > 1 && S.styles.every((s) => s.weight === 0)) throw new Error("Give at least one style a weight above 0.");
      for (const s of S.styles) form.append("style", s.file, s.file.name);
      form.append("style_weights", JSON.stringify(S.styles.map((s) => s.weight)));
    }
  }
  // masks: a plural field needs one per style (all painted) or none
  const targets = currentTargets();
  for (const spec of m.masks) {
    const mine = targets.filter((t) => t.field === spec.name);
    const painted = mine.filter((t) => S.masks[t.key] && S.masks[t.key].painted && maskLayer(t) === S.masks[t.key]);
    if (!painted.length) continue;
    if (spec.per_style && painted.length !== mine.length)
      throw new Error(`${spec.name}: paint a mask for every style (${painted.length} of ${mine.length} painted), or clear them.`);
    for (const t of mine) form.append(spec.name, await maskBlob(S.masks[t.key]), `${t.key.replace(":", "-")}.png`);
  }
  return form;
}

async function run() {
  clearFormError();
  const button = $("run");
  let form;
  try { form = await buildForm(); } catch (e) { showFormError(e.message); return; }
  button.disabled = true;
  button.textContent = "Uploading…";
  try {
    const job = await api("/api/jobs", { method: "POST", body: form });
    showJob(job);
    refreshHistory();
    if (window.matchMedia("(max-width: 860px)").matches) $("stage").scrollIntoView({ behavior: "smooth" });
  } catch (e) {
    showFormError(e.status === 429 ? `The studio is busy: ${e.message}` : e.message);
  } finally {
    button.disabled = !!S.method.unavailable;
    button.textContent = "Stylize";
  }
}

/* ------------------------------------------------------------------ following a job */

function stopFollowing() {
  if (S.es) { S.es.close(); S.es = null; }
  if (S.pollTimer) { clearInterval(S.pollTimer); S.pollTimer = null; }
}

function follow(job) {
  stopFollowing();
  if (["done", "failed", "cancelled"].includes(job.status)) return;
  if (window.EventSource && !window.__studioNoSSE) {
    S.sseErrors = 0;
    const es = new EventSource(job.links.events);
    S.es = es;
    es.addEventListener("job", (e) => { S.sseErrors = 0; update(JSON.parse(e.data)); });
    es.addEventListener("deleted", () => stopFollowing());
    es.onerror = () => {
      if (S.es !== es) return;
      if (++S.sseErrors >= 3) { es.close(); S.es = null; poll(job); }
    };
  } else {
    poll(job);
  }
}

function poll(job) {
  const tick = async () => {
    try { update(await api(job.links.self)); } catch (e) { if (e.status === 404) stopFollowing(); }
  };
  S.pollTimer = setInterval(tick, 1000);
  tick();
}

function showJob(job) {
  S.jobId = job.id;
  S.job = null;
  S.previewStep = null;
  $("placeholder").hidden = true;
  const img = $("view-img");
  img.hidden = true;
  img.removeAttribute("src");
  update(job);
  follow(job);
  markCurrentCard();
}

function swapImage(url, isPreview) {
  const img = $("view-img");
  const next = new Image();
  next.onload = () => {
    if (!S.job || !url.startsWith(`/api/jobs/${S.jobId}/`)) return;
    img.src = url;
    img.hidden = false;
    img.classList.toggle("preview", isPreview && next.naturalWidth < 200);
  };
  next.src = url;
}

function update(job) {
  // answers can cross (a cancel's reply after the event that it finished): keep the newest
  if (S.job && S.job.id === job.id && job.version < S.job.version) return;
  updateCard(job);
  if (job.id !== S.jobId) return;
  S.job = job;
  const terminal = ["done", "failed", "cancelled"].includes(job.status);
  $("status").hidden = false;
  const text = $("status-text");
  text.textContent = statusText(job) + (job.error ? `: ${job.error}` : "");
  text.className = `status-text ${job.status}`;
  const p = job.progress;
  const meta = [];
  if (p && p.remaining !== undefined) {
    meta.push(p.step ? `iteration ${p.step}` : "one-pass start");
    meta.push(`${formatSeconds(p.remaining)} left`);
    if (p.size) meta.push(`${p.size[0]}×${p.size[1]}`);
  } else if (p && p.steps) {
    meta.push(`step ${p.step}/${p.steps}`);
    if (p.levels > 1) meta.push(`level ${p.level + 1}/${p.levels}`);
    if (p.size) meta.push(`${p.size[0]}×${p.size[1]}`);
  }
  const elapsed = p && p.elapsed !== undefined ? p.elapsed
    : job.started ? ((job.finished || Date.now() / 1000) - job.started) : null;
  if (elapsed !== null && job.status !== "queued") meta.push(formatSeconds(elapsed));
  if (job.result) meta.push(`${job.result.width}×${job.result.height} px`);
  $("status-meta").textContent = meta.join(" · ");

  const frac = progressFraction(job);
  const bar = $("progress");
  bar.classList.toggle("indeterminate", job.status === "running" && frac === null);
  bar.hidden = terminal && job.status !== "done";
  $("progress-fill").style.width = frac === null ? "" : `${(frac * 100).toFixed(1)}%`;
  bar.setAttribute("aria-valuenow", frac === null ? "" : Math.round(frac * 100));

  const losses = $("losses");
  losses.textContent = "";
  if (p && p.loss !== undefined) {
    losses.append(el("div", {}, el("dt", { text: "loss" }), el("dd", { text: formatNumber(p.loss) })));
    for (const [k, v] of Object.entries(p.parts || {}))
      losses.append(el("div", {}, el("dt", { text: k }), el("dd", { text: formatNumber(v) })));
  }

  if (job.result && (job.status === "done" || job.status === "cancelled")) {
    swapImage(job.links.result, false);
  } else if (job.links.preview && p && p.preview_step !== S.previewStep) {
    S.previewStep = p.preview_step;
    swapImage(job.links.preview, true);
  } else if (!job.links.preview && $("view-img").hidden && job.links.inputs) {
    // nothing rendered yet: show the input, dimmed by the status
    const first = Object.values(job.links.inputs)[0];
    if (first) swapImage(first, false);
  }

  $("cancel").hidden = terminal;
  $("cancel").disabled = !!job.cancel_requested;
  const dl = $("download");
  dl.hidden = !job.result;
  if (job.result) dl.href = job.links.download;
  $("compare-add").hidden = !job.result;
  $("compare-add").textContent = S.compare.includes(job.id) ? "In comparison ✓" : "Add to comparison";

  if (terminal) {
    stopFollowing();
    refreshHistory();
    refreshStatus();
  }
}

async function cancelCurrent() {
  if (!S.job || !S.job.links.cancel) return;
  try { update(await api(S.job.links.cancel, { method: "POST" })); }
  catch (e) { toast(e.message); }
}

/* ------------------------------------------------------------------ history & compare */

let historyPending = null;
async function refreshHistory() {
  if (historyPending) return historyPending;
  historyPending = (async () => {
    try {
      const data = await api("/api/jobs?limit=60");
      S.jobs = data.jobs;
      renderHistory();
      renderCompare();
      renderQueueChip(data.stats);
    } catch (e) { /* the server may be restarting; the next refresh will tell */ }
    finally { historyPending = null; }
  })();
  return historyPending;
}

function thumbUrl(job) {
  const step = job.progress && job.progress.preview_step;
  return `${job.links.thumbnail}?v=${job.status}-${step || 0}`;
}

function jobCard(job) {
  const img = el("img", { src: thumbUrl(job), alt: `${job.method} ${job.status}`, loading: "lazy" });
  const inCompare = S.compare.includes(job.id);
  const tools = el("div", { class: `job-tools ${inCompare ? "keep" : ""}` });
  if (job.result) {
    tools.append(el("button", { type: "button", class: inCompare ? "on" : "", title: "compare side by side",
      onclick: (e) => { e.stopPropagation(); toggleCompare(job.id); } }, inCompare ? "✓ compare" : "compare"));
  }
  if (["done", "failed", "cancelled"].includes(job.status)) {
    tools.append(el("button", { type: "button", title: "delete this job", "aria-label": "delete",
      onclick: async (e) => {
        e.stopPropagation();
        try { await api(`/api/jobs/${job.id}`, { method: "DELETE" }); } catch (err) { toast(err.message); }
        S.compare = S.compare.filter((x) => x !== job.id);
        saveCompare();
        refreshHistory();
      } }, "×"));
  }
  return el("li", { class: `job ${job.id === S.jobId ? "current" : ""}`, "data-job": job.id, tabindex: 0,
    onclick: () => showJob(job), onkeydown: (e) => { if (e.key === "Enter") showJob(job); } },
    img, tools,
    el("div", { class: "meta" }, el("span", { text: job.method }), el("span", { class: `state ${job.status}`, text: job.interrupted ? "interrupted" : job.status })));
}

function renderHistory() {
  const list = $("history");
  list.textContent = "";
  for (const job of S.jobs) list.append(jobCard(job));
  $("history-count").textContent = S.jobs.length ? `${S.jobs.length} kept on the server` : "none yet";
}

function updateCard(job) {
  const i = S.jobs.findIndex((j) => j.id === job.id);
  if (i < 0) return;
  const old = S.jobs[i];
  if (job.version < old.version) return;
  S.jobs[i] = job;
  const node = document.querySelector(`[data-job="${job.id}"]`);
  const changedThumb = old.status !== job.status ||
    (job.progress && old.progress && job.progress.preview_step !== old.progress.preview_step && job.progress.step % 10 === 0);
  if (node && (changedThumb || old.status !== job.status)) node.replaceWith(jobCard(job));
}

function markCurrentCard() {
  for (const node of document.querySelectorAll(".job")) node.classList.toggle("current", node.dataset.job === S.jobId);
}

function saveCompare() { localStorage.setItem("restyle.compare", JSON.stringify(S.compare)); }

function toggleCompare(id) {
  if (S.compare.includes(id)) S.compare = S.compare.filter((x) => x !== id);
  else { S.compare.push(id); if (S.compare.length > 4) S.compare.shift(); }
  saveCompare();
  renderHistory();
  renderCompare();
  if (S.job) $("compare-add").textContent = S.compare.includes(S.job.id) ? "In comparison ✓" : "Add to comparison";
}

function caption(job) {
  const params = Object.entries(job.params || {}).map(([k, v]) => `${k} ${v}`).join(", ");
  const styles = job.style_names && job.style_names.length ? job.style_names.join(" + ")
    : (job.labels && job.labels.styles || []).join(" + ");
  return el("figcaption", {}, el("b", { text: job.method }), styles ? ` · ${styles}` : "",
    params ? el("div", { text: params }) : null);
}

function renderCompare() {
  const known = S.jobs.filter((j) => S.compare.includes(j.id) && j.result);
  const box = $("compare"), grid = $("compare-grid");
  box.hidden = known.length < 1;
  grid.textContent = "";
  for (const id of S.compare) {
    const job = known.find((j) => j.id === id);
    if (!job) continue;
    grid.append(el("figure", {}, el("a", { href: job.links.result, target: "_blank", rel: "noopener" },
      el("img", { src: job.links.result, alt: `${job.method} result` })), caption(job)));
  }
  if (known.length === 1) grid.append(el("p", { class: "muted", text: "Add another result to compare side by side." }));
}

/* ------------------------------------------------------------------ status chip */

function renderQueueChip(stats) {
  const chip = $("queue-chip");
  if (!stats) return;
  const busy = stats.running + stats.queued;
  chip.textContent = busy ? `${stats.running} running · ${stats.queued} queued` : "ready";
  chip.classList.toggle("busy", !!busy);
}

async function refreshStatus() {
  try {
    const status = await api("/api/status");
    S.limits = status.limits;
    renderQueueChip(status.queue);
  } catch (e) {
    $("queue-chip").textContent = "server unreachable";
  }
}

/* ------------------------------------------------------------------ drop zones */

function setupDrop(zone, input, onFiles) {
  input.addEventListener("change", () => { onFiles([...input.files]); input.value = ""; });
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const files = [...e.dataTransfer.files].filter((f) => f.type.startsWith("image/") || !f.type);
    if (files.length) onFiles(files);
  });
}

/* ------------------------------------------------------------------ start */

async function start() {
  setupDrop($("content-drop"), $("content-input"), (files) => setContent(files[0]));
  setupDrop($("style-drop"), $("style-input"), (files) => addStyles(files));
  setupMaskPainter();
  $("method").addEventListener("change", (e) => selectMethod(e.target.value));
  window.addEventListener("resize", () => { if (S.method && S.method.masks.length) drawMask(); });
  $("run").addEventListener("click", run);
  $("cancel").addEventListener("click", cancelCurrent);
  $("compare-add").addEventListener("click", () => S.job && toggleCompare(S.job.id));
  $("compare-clear").addEventListener("click", () => { S.compare = []; saveCompare(); renderHistory(); renderCompare(); });
  $("params-reset").addEventListener("click", () => { S.values[S.method.name] = {}; selectMethod(S.method.name); });
  await refreshStatus();
  try {
    const data = await api("/api/methods");
    S.methods = data.methods;
    S.byName = Object.fromEntries(S.methods.map((m) => [m.name, m]));
  } catch (e) {
    showFormError(`Cannot load the methods: ${e.message}`);
    return;
  }
  renderMethods();
  await refreshHistory();
  setInterval(() => { if (!document.hidden) refreshHistory(); }, 5000);
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", start);
