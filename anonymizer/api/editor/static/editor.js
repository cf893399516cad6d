// The review editor (docs/review.md, "Editor"). Plain JavaScript, no library, nothing loaded from
// elsewhere: the page's Content-Security-Policy allows this origin only. Pictures are fetched with
// the bearer token and drawn on a canvas (createImageBitmap), so no picture URL works without it.
// What the reviewer draws is kept as the sidecar format itself ({regions: [...], exclusions: [...]}),
// checked by the server with the sidecar parser, and sent back unchanged on "apply".
"use strict";

const $ = (sel) => document.querySelector(sel);
const api = "api/";
const TOKEN_KEY = "anonymizer.review.token";
const COLORS = { detected: "#2e7d32", interpolated: "#81c784", predicted: "#f9a825", excluded: "#c62828", manual: "#1565c0" };

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  me: null,
  job: null,
  frame: 0,
  shown: -1,
  seq: 0,
  shapes: { regions: [], exclusions: [] },
  selected: null, // {list, index}
  errors: [],
  tool: "box",
  drag: null,
  polygon: [],
  playing: false,
  bitmap: null,
};

// ----------------------------------------------------------------------------- server calls
class HttpError extends Error {
  constructor(status, detail, body) { super(detail); this.status = status; this.body = body; }
}

async function call(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + state.token }, options.headers || {});
  const response = await fetch(api + path, Object.assign({}, options, { headers, cache: "no-store" }));
  if (response.status === 401) {
    signOut("Your token was refused (expired or invalid): sign in again.");
    throw new HttpError(401, "unauthorized");
  }
  if (!response.ok && response.status !== 422) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new HttpError(response.status, detail);
  }
  return response;
}

async function getJson(path) { return (await call(path)).json(); }

async function postJson(path, body) {
  const response = await call(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? "{}" : JSON.stringify(body),
  });
  return { status: response.status, data: await response.json() };
}

function say(text, isError = false) {
  const el = $("#status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

// ----------------------------------------------------------------------------- sign in, routing
function show(section) {
  for (const id of ["login", "queue", "job"]) $("#" + id).hidden = id !== section;
}

function signOut(message) {
  state.token = "";
  state.playing = false;
  sessionStorage.removeItem(TOKEN_KEY);
  $("#who").textContent = "";
  $("#logout").hidden = true;
  $("#login-error").textContent = message || "";
  show("login");
}

async function signIn() {
  state.token = $("#token").value.trim();
  if (!state.token) return;
  sessionStorage.setItem(TOKEN_KEY, state.token);
  $("#token").value = "";
  route();
}

async function route() {
  if (!state.token) { signOut(); return; }
  try {
    state.me = await getJson("me");
  } catch (e) {
    if (e.status !== 401) signOut(e.status === 403 ? "This token may not review: " + e.message : e.message);
    return;
  }
  $("#who").textContent = "operator " + state.me.operator + (state.me.source ? " · may view sources" : "");
  $("#logout").hidden = false;
  const match = location.hash.match(/^#\/job\/([A-Za-z0-9_.-]+)$/);
  state.playing = false;
  if (match) await openJob(match[1]);
  else await openQueue();
}

// ----------------------------------------------------------------------------- queue
function duration(s) {
  if (s === null || s === undefined) return "–";
  const m = Math.floor(s / 60), r = s - 60 * m;
  return m ? `${m}:${r.toFixed(1).padStart(4, "0")}` : `${r.toFixed(1)} s`;
}

function age(s) {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

async function openQueue() {
  const body = $("#queue-table tbody");
  body.replaceChildren(); // no stale row to click while the list is fetched again
  show("queue");
  $("#crumb").textContent = "queue";
  const rows = await getJson("queue");
  const named = rows.some((r) => "file" in r);
  document.querySelectorAll(".file-col").forEach((el) => { el.hidden = !named; });
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.dataset.job = r.job_id;
    const cells = [r.job_id, r.kind === "image" ? "photo" : r.kind || "?", r.kind === "image" ? "–" : duration(r.duration_s),
      r.detections, r.likely_leaks, r.rounds, age(r.age_s)];
    if (named) cells.push(r.file || "");
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = String(c);
      tr.appendChild(td);
    }
    tr.addEventListener("click", () => { location.hash = "#/job/" + r.job_id; });
    body.appendChild(tr);
  }
  $("#queue-count").textContent = `(${rows.length})`;
  $("#queue-empty").hidden = rows.length > 0;
  $("#queue-table").hidden = rows.length === 0;
}

// ----------------------------------------------------------------------------- job page
async function openJob(id, keepFrame = false) {
  show("job");
  delete $("#frame").dataset.frame; // what the canvas shows is unknown until a frame is drawn
  delete $("#frame").dataset.job;
  const job = await getJson("jobs/" + encodeURIComponent(id));
  state.job = job;
  $("#crumb").textContent = "job " + job.job_id;
  const photo = job.kind === "image";
  state.frames = photo ? 1 : Math.max(1, job.frames || 1);
  state.fps = job.fps || 25;
  if (!keepFrame) state.frame = 0;
  state.frame = Math.min(state.frame, state.frames - 1);
  state.shapes = { regions: [...((job.masks || {}).regions || [])], exclusions: [...((job.masks || {}).exclusions || [])] };
  state.selected = null;
  state.errors = [];
  state.polygon = [];
  for (const c of [$("#frame"), $("#overlay")]) { c.width = job.width || 16; c.height = job.height || 9; }
  fitCanvas();
  $("#scrub").max = String(state.frames - 1);
  $("#frame-no").max = String(state.frames - 1);
  $("#transport").hidden = photo;
  $("#scrub").hidden = photo;
  $("#range-row").hidden = photo;
  $("#source-toggle").hidden = !(state.me && state.me.source);
  $("#frame").dataset.round = String(job.rounds);
  const counts = Object.entries(job.counts || {}).map(([k, c]) => `${c.regions || 0} ${k}`).join(", ");
  $("#job-info").textContent = `${photo ? "photo" : "video"} ${job.width}×${job.height}` +
    (photo ? "" : `, ${state.frames} frames, ${duration(job.duration_s)}`) +
    ` · round ${job.rounds} · masked: ${counts || "nothing"}` + (job.file ? ` · ${job.file}` : "");
  const waiting = job.review === "waiting";
  for (const b of ["#apply", "#approve", "#reject"]) $(b).disabled = !waiting;
  if (!waiting) say(`This output is not waiting for review (${job.review}).`);
  drawTimeline();
  listLeaks();
  listShapes();
  if (waiting) await goTo(state.frame, true);
}

function fitCanvas() {
  const wrap = $("#canvas-wrap");
  const w = state.job ? state.job.width || 16 : 16, h = state.job ? state.job.height || 9 : 9;
  const maxW = $("#stage").clientWidth || 800, maxH = Math.max(200, Math.min(560, window.innerHeight - 190));
  const scale = Math.min(maxW / w, maxH / h);
  for (const c of [$("#frame"), $("#overlay")]) {
    c.style.width = Math.floor(w * scale) + "px";
    c.style.height = Math.floor(h * scale) + "px";
  }
  wrap.style.width = Math.floor(w * scale) + "px";
  wrap.style.height = Math.floor(h * scale) + "px";
}

async function goTo(n, force = false) {
  n = Math.max(0, Math.min(state.frames - 1, Math.round(Number(n) || 0)));
  if (n === state.shown && !force) return;
  state.frame = n;
  $("#frame-no").value = String(n);
  $("#scrub").value = String(n);
  $("#frame-info").textContent = `/ ${state.frames - 1} · ${(n / state.fps).toFixed(2)} s`;
  drawOverlay();
  drawCursor();
  const seq = ++state.seq;
  const source = $("#show-source").checked && state.me.source;
  const path = `jobs/${encodeURIComponent(state.job.job_id)}/${source ? "source" : "frames"}/${n}`;
  let bitmap;
  try {
    bitmap = await createImageBitmap(await (await call(path)).blob());
  } catch (e) {
    if (seq === state.seq) $("#frame-state").textContent = "frame not shown: " + e.message;
    return;
  }
  if (seq !== state.seq) return; // a later step overtook this one
  const canvas = $("#frame");
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  state.shown = n;
  canvas.dataset.frame = String(n);
  canvas.dataset.job = state.job.job_id;
  canvas.dataset.source = source ? "1" : "0";
  $("#frame-state").textContent = source ? "SOURCE frame (this view is audited)" : "held output (anonymized)";
  drawOverlay();
}

async function play() {
  if (state.playing) { state.playing = false; return; }
  state.playing = true;
  $("#play").textContent = "pause";
  while (state.playing && state.frame < state.frames - 1) {
    const started = performance.now();
    await goTo(state.frame + 1);
    const wait = 1000 / state.fps - (performance.now() - started);
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  state.playing = false;
  $("#play").textContent = "play";
}

// ----------------------------------------------------------------------------- timeline, leaks
const SVG = "http://www.w3.org/2000/svg";

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function drawTimeline() {
  const box = $("#timeline");
  box.replaceChildren();
  const tl = state.job.timeline;
  if (!tl || !tl.frames) { box.textContent = "No per-frame data for this job."; return; }
  const width = 370, label = 56, rowH = 16, rows = Object.entries(tl.rows);
  const plot = width - label - 4, height = rows.length * rowH + 14;
  const svg = svgEl("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "timeline" });
  const x = (f) => label + (plot * f) / tl.frames;
  rows.forEach(([name, runs], r) => {
    const y = r * rowH;
    const text = svgEl("text", { x: 2, y: y + 12, "font-size": 11 });
    text.textContent = name;
    svg.appendChild(text);
    svg.appendChild(svgEl("rect", { x: label, y: y + 2, width: plot, height: rowH - 4, fill: "#eceff1" }));
    for (const [start, length, kind] of runs) {
      const rect = svgEl("rect", { x: x(start), y: y + 2, width: Math.max(1, x(start + length) - x(start)), height: rowH - 4,
        fill: COLORS[kind] || "#888" });
      const title = svgEl("title", {});
      title.textContent = `${name}: ${kind}, frames ${start}–${start + length - 1}`;
      rect.appendChild(title);
      svg.appendChild(rect);
    }
  });
  for (const leak of state.job.leak_frames || []) {
    svg.appendChild(svgEl("line", { x1: x(leak.frame + 0.5), x2: x(leak.frame + 0.5), y1: height - 12, y2: height - 2,
      stroke: "#c62828", "stroke-width": 2 }));
  }
  const cursor = svgEl("line", { id: "tl-cursor", x1: label, x2: label, y1: 0, y2: height, stroke: "#000", "stroke-width": 1 });
  svg.appendChild(cursor);
  svg.addEventListener("click", (ev) => {
    const r = svg.getBoundingClientRect();
    const f = Math.floor(((ev.clientX - r.left) * (width / r.width) - label) / plot * tl.frames);
    if (f >= 0 && f < tl.frames) goTo(f);
  });
  box.appendChild(svg);
  state.tl = { x };
  $("#legend").replaceChildren(...Object.entries(COLORS).map(([k, c]) => {
    const span = document.createElement("span");
    const i = document.createElement("i");
    i.style.background = c;
    span.append(i, k === "predicted" ? "guess only" : k);
    return span;
  }));
  drawCursor();
}

function drawCursor() {
  const c = document.getElementById("tl-cursor");
  if (!c || !state.tl) return;
  const xx = state.tl.x(state.frame + 0.5);
  c.setAttribute("x1", xx);
  c.setAttribute("x2", xx);
}

function listLeaks() {
  const ul = $("#leaks");
  ul.replaceChildren();
  const leaks = state.job.leak_frames || [];
  if (!leaks.length) { const li = document.createElement("li"); li.textContent = "none singled out"; ul.appendChild(li); }
  for (const leak of leaks) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.textContent = `frame ${leak.frame}`;
    a.dataset.frame = String(leak.frame);
    a.addEventListener("click", () => goTo(leak.frame));
    li.append(a, ": " + leak.why.join("; "));
    ul.appendChild(li);
  }
}

// ----------------------------------------------------------------------------- shapes: the sidecar
function seconds(v) {
  if (typeof v === "number") return v;
  const m = String(v).trim().match(/^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$/);
  return m ? Number(m[1] || 0) * 3600 + Number(m[2]) * 60 + Number(m[3]) : NaN;
}

// Where a bound of a sidecar entry is, in frames of this clip (times converted with the clip's rate).
function boundFrame(d, which) {
  if (d[which + "_frame"] !== undefined) return d[which + "_frame"];
  if (d[which] !== undefined) return seconds(d[which]) * state.fps;
  return which === "start" ? -Infinity : Infinity;
}

function keyFrame(k) { return k.frame !== undefined ? k.frame : seconds(k.time) * state.fps; }

// The polygon of a region or exclusion on frame n ([[x, y], ...]), or null where it is not active.
function pointsAt(d, n) {
  const corners = (b) => [[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]];
  if (d.keys) {
    const keys = d.keys.filter((k) => Array.isArray(k.box));
    if (!keys.length) return null;
    if (keys.length === 1) return keyFrame(keys[0]) === n ? corners(keys[0].box) : null;
    if (n < keyFrame(keys[0]) || n > keyFrame(keys[keys.length - 1])) return null;
    for (let i = 1; i < keys.length; i++) {
      const a = keys[i - 1], b = keys[i], fa = keyFrame(a), fb = keyFrame(b);
      if (n <= fb) { // linear between the two keys around this frame, as the engine does
        const t = Math.min(1, Math.max(0, (n - fa) / Math.max(fb - fa, 1e-9)));
        return corners(a.box.map((v, j) => (1 - t) * v + t * b.box[j]));
      }
    }
    return null;
  }
  if (state.job.kind !== "image" && (n < boundFrame(d, "start") - 1e-6 || n > boundFrame(d, "end") + 1e-6)) return null;
  if (Array.isArray(d.box)) return corners(d.box);
  if (Array.isArray(d.polygon)) return d.polygon;
  return null;
}

function describe(list, d) {
  const kind = list === "exclusions" ? "exclusion" : d.keys ? "moving box" : d.polygon ? "polygon" : "box";
  let when = "";
  if (state.job.kind !== "image") {
    if (d.keys) when = `keys at frames ${d.keys.map((k) => Math.round(keyFrame(k))).join(", ")}`;
    else {
      const s = boundFrame(d, "start"), e = boundFrame(d, "end");
      when = s === -Infinity && e === Infinity ? "whole clip" : `frames ${s === -Infinity ? 0 : Math.round(s)}–${e === Infinity ? "end" : Math.round(e)}`;
    }
  }
  const extra = list === "exclusions" ? (d.classes || ["face", "plate"]).join("+") : d.method || "fill";
  return [kind, when, extra].filter(Boolean).join(" · ");
}

function firstFrame(d) {
  if (d.keys && d.keys.length) return Math.round(keyFrame(d.keys[0]));
  const s = boundFrame(d, "start");
  return s === -Infinity ? null : Math.round(s);
}

function listShapes() {
  const ol = $("#shapes");
  ol.replaceChildren();
  $("#shapes-error").textContent = state.errors.filter((e) => e.list === null).map((e) => e.message).join("; ");
  for (const list of ["regions", "exclusions"]) {
    state.shapes[list].forEach((d, index) => {
      const li = document.createElement("li");
      li.dataset.list = list;
      li.dataset.index = String(index);
      const sel = state.selected && state.selected.list === list && state.selected.index === index;
      li.classList.toggle("selected", Boolean(sel));
      const label = document.createElement("span");
      label.textContent = describe(list, d) + " ";
      const del = document.createElement("button");
      del.type = "button";
      del.textContent = "✕";
      del.title = "remove";
      del.addEventListener("click", (ev) => { ev.stopPropagation(); removeShape(list, index); });
      li.append(label, del);
      for (const e of state.errors.filter((x) => x.list === list && x.index === index)) {
        const err = document.createElement("span");
        err.className = "error";
        err.textContent = e.message;
        li.appendChild(err);
      }
      li.addEventListener("click", () => {
        state.selected = { list, index };
        listShapes();
        const f = firstFrame(d);
        if (f !== null && pointsAt(d, state.frame) === null) goTo(f); else drawOverlay();
      });
      ol.appendChild(li);
    });
  }
  const n = state.shapes.regions.length + state.shapes.exclusions.length;
  $("#apply").textContent = n ? `Apply ${n} shape${n > 1 ? "s" : ""} (re-run)` : "Apply (re-run)";
}

function removeShape(list, index) {
  state.shapes[list].splice(index, 1);
  state.selected = null;
  changed();
}

let checkTimer = null;
function changed() {
  listShapes();
  drawOverlay();
  clearTimeout(checkTimer);
  checkTimer = setTimeout(check, 250);
}

async function check() {
  try {
    const { data } = await postJson(`jobs/${encodeURIComponent(state.job.job_id)}/check`, state.shapes);
    state.errors = data.errors || [];
  } catch (e) {
    state.errors = [{ list: null, index: null, message: e.message }];
  }
  listShapes();
}

function rangeOf() {
  if (state.job.kind === "image") return {};
  const mode = $("#range").value;
  if (mode === "frame") return { start_frame: state.frame, end_frame: state.frame };
  if (mode === "span") {
    const a = Math.round(Number($("#span-from").value) || 0), b = Math.round(Number($("#span-to").value) || 0);
    return { start_frame: Math.min(a, b), end_frame: Math.max(a, b) };
  }
  return {};
}

function addBox(box) {
  const method = $("#method").value;
  if (state.tool === "exclusion") {
    state.shapes.exclusions.push(Object.assign({ box, classes: ["face", "plate"] }, rangeOf()));
    state.selected = { list: "exclusions", index: state.shapes.exclusions.length - 1 };
  } else if (state.tool === "moving") {
    const sel = state.selected && state.selected.list === "regions" ? state.shapes.regions[state.selected.index] : null;
    if (sel && sel.keys) { // a key box at this frame: replaces one already here
      sel.keys = sel.keys.filter((k) => Math.round(keyFrame(k)) !== state.frame);
      sel.keys.push({ frame: state.frame, box });
      sel.keys.sort((a, b) => keyFrame(a) - keyFrame(b));
    } else {
      state.shapes.regions.push({ keys: [{ frame: state.frame, box }], method });
      state.selected = { list: "regions", index: state.shapes.regions.length - 1 };
    }
  } else {
    state.shapes.regions.push(Object.assign({ box }, rangeOf(), { method }));
    state.selected = { list: "regions", index: state.shapes.regions.length - 1 };
  }
  changed();
}

function closePolygon() {
  if (state.polygon.length >= 3) {
    state.shapes.regions.push(Object.assign({ polygon: state.polygon }, rangeOf(), { method: $("#method").value }));
    state.selected = { list: "regions", index: state.shapes.regions.length - 1 };
  }
  state.polygon = [];
  changed();
}

// ----------------------------------------------------------------------------- overlay, mouse
function drawOverlay() {
  const c = $("#overlay"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  if (!$("#show-shapes").checked) return; // the output as it is, without the outlines
  const lw = Math.max(1.5, c.width / 500);
  for (const list of ["regions", "exclusions"]) {
    state.shapes[list].forEach((d, index) => {
      const pts = pointsAt(d, state.frame);
      if (!pts) return;
      const sel = state.selected && state.selected.list === list && state.selected.index === index;
      const bad = state.errors.some((e) => e.list === list && e.index === index);
      g.beginPath();
      pts.forEach(([px, py], i) => (i ? g.lineTo(px, py) : g.moveTo(px, py)));
      g.closePath();
      g.lineWidth = sel ? lw * 2 : lw;
      g.strokeStyle = bad ? "#ff1744" : list === "exclusions" ? "#ffb300" : "#40c4ff";
      g.setLineDash(list === "exclusions" ? [6, 4] : []);
      g.fillStyle = list === "exclusions" ? "rgba(255,179,0,0.12)" : "rgba(64,196,255,0.18)";
      g.fill();
      g.stroke();
    });
  }
  g.setLineDash([]);
  if (state.drag) {
    const { x0, y0, x1, y1 } = state.drag;
    g.strokeStyle = "#fff";
    g.lineWidth = lw;
    g.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
  }
  if (state.polygon.length) {
    g.beginPath();
    state.polygon.forEach(([px, py], i) => (i ? g.lineTo(px, py) : g.moveTo(px, py)));
    g.strokeStyle = "#fff";
    g.lineWidth = lw;
    g.stroke();
  }
}

function pixel(ev) {
  const c = $("#overlay"), r = c.getBoundingClientRect();
  const x = ((ev.clientX - r.left) * c.width) / r.width, y = ((ev.clientY - r.top) * c.height) / r.height;
  return [Math.round(Math.max(0, Math.min(c.width, x))), Math.round(Math.max(0, Math.min(c.height, y)))];
}

function setTool(tool) {
  state.tool = tool;
  state.polygon = [];
  document.querySelectorAll("#tools .tool").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.tool === tool)));
  $("#tool-hint").textContent = {
    box: "Drag a box over what must be hidden.",
    polygon: "Click the corners; double-click or Enter closes the polygon, Esc drops it.",
    moving: "Drag the box on one frame, step to another frame and drag it again: one key box per frame, linear in between.",
    exclusion: "Drag a box around a false detection: detections lying wholly inside are left unmasked (counted).",
  }[tool];
  drawOverlay();
}

function wireCanvas() {
  const c = $("#overlay");
  c.addEventListener("mousedown", (ev) => {
    if (state.tool === "polygon" || ev.button !== 0) return;
    const [x, y] = pixel(ev);
    state.drag = { x0: x, y0: y, x1: x, y1: y };
  });
  c.addEventListener("mousemove", (ev) => {
    if (!state.drag) return;
    [state.drag.x1, state.drag.y1] = pixel(ev);
    drawOverlay();
  });
  window.addEventListener("mouseup", () => {
    if (!state.drag) return;
    const { x0, y0, x1, y1 } = state.drag;
    state.drag = null;
    if (Math.abs(x1 - x0) >= 2 && Math.abs(y1 - y0) >= 2) {
      addBox([Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)]);
    } else drawOverlay();
  });
  c.addEventListener("click", (ev) => {
    if (state.tool !== "polygon") return;
    state.polygon.push(pixel(ev));
    drawOverlay();
  });
  c.addEventListener("dblclick", (ev) => {
    if (state.tool !== "polygon") return;
    ev.preventDefault();
    // The double-click's two clicks each added the same corner: keep one.
    const p = state.polygon;
    while (p.length > 1 && p[p.length - 1][0] === p[p.length - 2][0] && p[p.length - 1][1] === p[p.length - 2][1]) p.pop();
    closePolygon();
  });
}

// ----------------------------------------------------------------------------- decisions
async function waitFor(predicate, what, timeoutMs = 180000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const job = await getJson("jobs/" + encodeURIComponent(state.job.job_id));
    if (predicate(job)) return job;
    await new Promise((r) => setTimeout(r, 700));
  }
  throw new Error("timed out waiting for " + what);
}

async function apply() {
  const id = state.job.job_id, round = state.job.rounds;
  const { status, data } = await postJson(`jobs/${encodeURIComponent(id)}/apply`, state.shapes);
  if (status === 422) {
    state.errors = data.errors || [];
    listShapes();
    drawOverlay();
    say("Not applied: fix the shapes marked in red.", true);
    return;
  }
  for (const b of ["#apply", "#approve", "#reject"]) $(b).disabled = true;
  say(`Re-running with ${state.shapes.regions.length + state.shapes.exclusions.length} shape(s)…`);
  try {
    await waitFor((j) => j.rounds > round && j.review === "waiting", "the new output");
  } catch (e) { say(e.message, true); return; }
  await openJob(id, true);
  say(`Round ${state.job.rounds} held: the new output is shown.`);
}

async function decide(decision) {
  const id = state.job.job_id;
  if (decision === "reject" && $("#reject").dataset.armed !== "1") {
    $("#reject").dataset.armed = "1";
    $("#reject").textContent = "Reject: click again";
    setTimeout(() => { $("#reject").dataset.armed = ""; $("#reject").textContent = "Reject"; }, 4000);
    return;
  }
  try {
    await postJson(`jobs/${encodeURIComponent(id)}/${decision}`);
  } catch (e) { say(e.message, true); return; }
  for (const b of ["#apply", "#approve", "#reject"]) $(b).disabled = true;
  say(decision === "approve" ? "Approved: publishing…" : "Rejected: closing…");
  try {
    const job = await waitFor((j) => ["published", "closed"].includes(j.review), "the daemon to apply it", 60000);
    say(job.review === "published" ? `Published (approved by ${state.me.operator}).` : "Rejected: nothing published, the source stays.");
  } catch (e) { say(e.message + " (the decision is recorded; the daemon applies it when it runs)", true); }
}

// ----------------------------------------------------------------------------- wiring
function wire() {
  $("#sign-in").addEventListener("click", signIn);
  $("#logout").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => { if (state.job) fitCanvas(); });
  $("#first").addEventListener("click", () => goTo(0));
  $("#prev").addEventListener("click", () => goTo(state.frame - 1));
  $("#next").addEventListener("click", () => goTo(state.frame + 1));
  $("#last").addEventListener("click", () => goTo(state.frames - 1));
  $("#play").addEventListener("click", play);
  $("#frame-no").addEventListener("change", (ev) => goTo(ev.target.value));
  $("#scrub").addEventListener("input", (ev) => goTo(ev.target.value));
  $("#show-source").addEventListener("change", () => goTo(state.frame, true));
  $("#show-shapes").addEventListener("change", drawOverlay);
  $("#range").addEventListener("change", () => {
    const span = $("#range").value === "span";
    $("#span-fields").hidden = !span;
    if (span) { $("#span-from").value = String(state.frame); $("#span-to").value = String(Math.min(state.frames - 1, state.frame + Math.round(state.fps))); }
  });
  document.querySelectorAll("#tools .tool").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  $("#apply").addEventListener("click", apply);
  $("#approve").addEventListener("click", () => decide("approve"));
  $("#reject").addEventListener("click", () => decide("reject"));
  document.addEventListener("keydown", (ev) => {
    if ($("#job").hidden || ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) return;
    const keys = {
      ArrowRight: () => goTo(state.frame + 1), ArrowLeft: () => goTo(state.frame - 1),
      Home: () => goTo(0), End: () => goTo(state.frames - 1), " ": play,
      Enter: () => state.tool === "polygon" && closePolygon(),
      Escape: () => { state.polygon = []; drawOverlay(); },
      Delete: () => state.selected && removeShape(state.selected.list, state.selected.index),
    };
    if (keys[ev.key]) { ev.preventDefault(); keys[ev.key](); }
  });
  wireCanvas();
  setTool("box");
  route();
}

wire();
