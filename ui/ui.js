/* The dashboard: polls GET state (the controller's /ui/state, or the lab
 * coordinator's) once a second and draws it. The time series are kept
 * here, from the page's first poll on (HISTORY samples). No framework, no
 * library: DOM calls and SVG polylines. */
"use strict";

const POLL_MS = 1000;
const HISTORY = 300; /* samples per series: five minutes */

const page = {
  token: sessionStorage.getItem("kv-token") || "",
  lastEvent: 0,
  events: [],         /* newest last, at most 200 */
  series: new Map(),  /* name -> [values] */
  prev: null,         /* the previous state and its time, for rates */
};

/* ---- small helpers -------------------------------------------------- */

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function fmt(n, digits) {
  if (n === undefined || n === null || Number.isNaN(n)) return "–";
  if (digits !== undefined) return n.toFixed(digits);
  return Math.round(n).toLocaleString("en-US");
}

function clock(ms) {
  return new Date(ms).toLocaleTimeString("en-GB", { hour12: false });
}

function push(name, v) {
  let s = page.series.get(name);
  if (!s) page.series.set(name, (s = []));
  s.push(Number.isFinite(v) ? v : 0);
  if (s.length > HISTORY) s.shift();
  return s;
}

const SVG = "http://www.w3.org/2000/svg";

/* A sparkline of a series, scaled to its own maximum. */
function spark(name, cls) {
  const s = page.series.get(name) || [];
  const w = 300, h = 34, max = Math.max(1, ...s);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark" + (cls ? " " + cls : ""));
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("data-series", name);
  const line = document.createElementNS(SVG, "polyline");
  const step = w / (HISTORY - 1), x0 = w - step * (s.length - 1);
  line.setAttribute("points", s.map((v, i) =>
    `${(x0 + i * step).toFixed(1)},${(h - 2 - (v / max) * (h - 4)).toFixed(1)}`).join(" "));
  svg.append(line);
  return svg;
}

function metric(label, value, series, cls) {
  return el("div", { class: "metric", "data-metric": label },
    el("div", { class: "value" }, value),
    el("div", { class: "label" }, label),
    series ? spark(series, cls) : null);
}

/* Per-second rate of a counter between the previous poll and this one. */
function rate(cur, prev, dt) {
  if (prev === undefined || cur === undefined || dt <= 0 || cur < prev) return 0;
  return (cur - prev) / dt;
}

function authHeaders() {
  return page.token ? { Authorization: "Bearer " + page.token } : {};
}

function showError(text) {
  const p = document.getElementById("error");
  p.hidden = !text;
  p.textContent = text || "";
}

/* ---- the events list, shared by both views -------------------------- */

function takeEvents(s) {
  for (const e of s.events || []) {
    if (e.id > page.lastEvent) page.events.push(e);
  }
  page.lastEvent = Math.max(page.lastEvent, s.last_event || 0);
  if (page.events.length > 200) page.events.splice(0, page.events.length - 200);
}

function eventsSection() {
  const items = page.events.slice().reverse().map((e) =>
    el("li", { "data-kind": e.kind },
      el("span", { class: "muted" }, clock(e.t_ms)),
      el("span", { class: "badge " + eventClass(e.kind) }, e.kind),
      el("span", { class: "text" }, e.text)));
  return el("section", { id: "events", class: "wide" },
    el("h2", {}, "events"),
    items.length ? el("ol", { class: "events" }, items)
                 : el("p", { class: "muted" }, "nothing yet"));
}

function eventClass(kind) {
  return { failover: "bad", restart: "warn", spill: "warn", dead: "bad",
           respawn: "warn", paused: "warn", resumed: "ok", fenced: "bad" }[kind] || "primary";
}

/* ---- cluster view ----------------------------------------------------- */

function storeRows(status, shard) {
  const nodes = (status.children || []).filter((c) => c.kind === "store" && c.shard === shard.id);
  const prim = nodes.find((c) => c.url === shard.primary);
  const top = prim ? prim.applied_seq : 0;
  return nodes.map((c) => {
    const isPrim = c.url === shard.primary;
    const alive = c.healthy;
    const lag = isPrim ? 0 : Math.max(0, top - (c.applied_seq || 0));
    return el("tr", { "data-store": c.name, "data-role": isPrim ? "primary" : "secondary",
                      "data-alive": alive ? "1" : "0" },
      el("td", {}, c.name),
      el("td", { class: isPrim ? "primary" : "" }, isPrim ? "primary" : "secondary"),
      el("td", { class: alive ? "ok" : "bad" }, alive ? "alive"
        : c.state === "running" ? "no answer" : (c.state || "down")),
      el("td", { class: "num" }, fmt(c.store_epoch)),
      el("td", { class: "num" }, fmt(c.applied_seq)),
      el("td", { class: "num " + (lag > 1000 ? "warn" : "") }, isPrim ? "" : fmt(lag)),
      el("td", { class: "num" }, fmt(c.restarts)));
  });
}

function shardsSection(s) {
  const share = new Map((s.ring || []).map((r) => [r.shard, r.share]));
  const cards = (s.status.shards || []).map((sh) => {
    const pct = (share.get(sh.id) || 0) * 100;
    const bar = el("span");
    bar.style.width = pct.toFixed(1) + "%";
    const primName = ((s.status.children || []).find((c) => c.url === sh.primary) || {}).name;
    return el("div", { class: "card", "data-shard": sh.id, "data-epoch": sh.epoch,
                       "data-primary": primName || "" },
      el("h3", {}, `shard ${sh.id}`,
        el("span", { class: "muted" }, `epoch ${sh.epoch}`),
        el("span", { class: "muted" }, `${pct.toFixed(1)} % of keys`),
        sh.failovers ? el("span", { class: "badge bad" }, `${sh.failovers} failover${sh.failovers > 1 ? "s" : ""}`) : null),
      el("div", { class: "bar" }, bar),
      el("table", {},
        el("thead", {}, el("tr", {},
          ["store", "role", "state"].map((h) => el("th", {}, h)),
          ["epoch", "applied", "lag", "restarts"].map((h) => el("th", { class: "num" }, h)))),
        el("tbody", {}, storeRows(s.status, sh))));
  });
  return el("section", { id: "shards", class: "wide" }, el("h2", {}, "shards"),
    el("div", { class: "cards" }, cards));
}

function queueSection(s, dt) {
  const q = s.queue;
  if (!q) return el("section", { id: "queue" }, el("h2", {}, "queue"),
                    el("p", { class: "bad" }, "the queue does not answer"));
  const p = page.prev && page.prev.queue;
  const d = q.depth || {};
  push("q.main", d.main); push("q.excess", d.excess); push("q.stale", d.stale);
  const r = {};
  for (const k of ["admitted", "applied", "rejected", "coalesced"]) {
    r[k] = rate(q[k], p ? p[k] : undefined, dt);
    push("q." + k, r[k]);
  }
  push("q.p99", q.apply_recent_p99_ms);
  return el("section", { id: "queue" }, el("h2", {}, "queue"),
    el("div", { class: "metrics" },
      metric("MAIN depth", fmt(d.main), "q.main"),
      metric("EXCESS depth", fmt(d.excess), "q.excess", "bad"),
      metric("STALE depth", fmt(d.stale), "q.stale", "bad"),
      metric("admitted /s", fmt(r.admitted), "q.admitted"),
      metric("applied /s", fmt(r.applied), "q.applied"),
      metric("rejected /s", fmt(r.rejected), "q.rejected", "bad"),
      metric("coalesced /s", fmt(r.coalesced), "q.coalesced"),
      metric("apply p99 ms", fmt(q.apply_recent_p99_ms, 1), "q.p99")));
}

function apiSection(s, dt) {
  const prev = new Map(((page.prev && page.prev.apis) || []).map((a) => [a.name, a.stats]));
  let rps = 0, limited = 0, p99 = 0;
  const rows = (s.apis || []).map((a) => {
    const st = a.stats, p = prev.get(a.name);
    if (!st) return el("tr", {}, el("td", {}, a.name), el("td", { class: "bad", colspan: 3 }, "no answer"));
    const r = rate(st.requests, p && p.requests, dt);
    const l = rate(st.rate_limited, p && p.rate_limited, dt);
    const lat = (st.latency && st.latency.recent_p99_ms) || 0;
    rps += r; limited += l; p99 = Math.max(p99, lat);
    return el("tr", { "data-api": a.name }, el("td", {}, a.name),
      el("td", { class: "num" }, fmt(r)), el("td", { class: "num" }, fmt(l)),
      el("td", { class: "num" }, fmt(lat, 1)));
  });
  push("api.rps", rps); push("api.429", limited); push("api.p99", p99);
  return el("section", { id: "api" }, el("h2", {}, "api"),
    el("div", { class: "metrics" },
      metric("requests /s", fmt(rps), "api.rps"),
      metric("429 /s", fmt(limited), "api.429", "bad"),
      metric("p99 ms", fmt(p99, 1), "api.p99")),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "process"),
      ["req/s", "429/s", "p99 ms"].map((h) => el("th", { class: "num" }, h)))),
      el("tbody", {}, rows)));
}

function migrationSection(s) {
  const m = s.migration;
  if (!m || !m.phase || m.phase === "none" || !m.id) return null;
  const t = m.totals || {};
  const done = m.predicted_keys > 0 ? Math.min(1, (t.sent || 0) / m.predicted_keys) : 0;
  const bar = el("span");
  bar.style.width = (m.phase === "done" ? 100 : done * 100).toFixed(1) + "%";
  const cls = m.phase === "failed" ? "bad" : m.running ? "warn" : "ok";
  return el("section", { id: "migration", class: "wide", "data-phase": m.phase },
    el("h2", {}, `shard migration ${m.id}`),
    el("p", {}, el("span", { class: "badge " + cls }, m.phase), " ",
      `${m.kind} shard ${m.shard} · ${fmt(t.sent)} of about ${fmt(m.predicted_keys)} records ` +
      `sent (${(m.share * 100).toFixed(1)} % of the keys move) · ${fmt(m.keys_per_s)} /s · ` +
      `${fmt(m.elapsed_s, 1)} s` + (m.eta_s ? ` · about ${fmt(m.eta_s)} s left` : "") +
      (m.error ? ` · ${m.error}` : "")),
    el("div", { class: "bar" }, bar));
}

function renderCluster(s, dt) {
  const st = s.status;
  document.getElementById("title").textContent = "kv cluster";
  document.getElementById("summary").textContent =
    `topology epoch ${st.epoch} · ${(st.shards || []).length} shards · ` +
    `${st.failovers} failovers · ${st.ready ? "ready" : "starting"}`;
  return [shardsSection(s), queueSection(s, dt), apiSection(s, dt),
          migrationSection(s), eventsSection()];
}

/* ---- lab view (kvctl lab) ------------------------------------------- */

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 1);
  } catch (e) {
    return text;
  }
}

async function labAction(path, body) {
  const out = document.getElementById("lab-out");
  try {
    const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json", ...authHeaders() },
                                  body: body === undefined ? "{}" : JSON.stringify(body) });
    if (out) out.textContent = `${r.status} ${path}\n${pretty(await r.text())}`;
  } catch (e) {
    if (out) out.textContent = `${path}: ${e}`;
  }
  schedule(0);
}

async function labRead(key) {
  const out = document.getElementById("lab-out");
  try {
    const r = await fetch("/read/" + encodeURIComponent(key), { headers: authHeaders() });
    if (out) out.textContent = `${r.status} GET /read/${key}\n${pretty(await r.text())}`;
  } catch (e) {
    if (out) out.textContent = `read: ${e}`;
  }
}

function nodeCard(n, role, ghosts) {
  const paused = n.paused_ms_left > 0;
  const st = paused ? "paused" : (n.status || "dead").replace("_", " ");
  const cls = { alive: "ok", "catching up": "warn", dead: "bad", paused: "warn" }[st] || "bad";
  return el("div", { class: "card", "data-node": n.node_id, "data-status": st,
                     "data-incarnation": n.incarnation },
    el("h3", {}, n.node_id, el("span", { class: "badge " + cls }, st),
      role === "leader" ? el("span", { class: "badge primary" }, "leader") : null,
      n.in_sync_set ? el("span", { class: "badge sync", "data-set": "sync" }, "sync set") : null,
      n.in_read_set ? el("span", { class: "badge primary", "data-set": "read" }, "read set") : null),
    el("table", {}, el("tbody", {},
      el("tr", {}, el("th", {}, "incarnation"), el("td", { class: "num" }, fmt(n.incarnation))),
      el("tr", {}, el("th", {}, "applied seq"), el("td", { class: "num" }, fmt(n.applied_seq))),
      el("tr", {}, el("th", {}, "last heartbeat"),
        el("td", { class: "num" }, n.last_heartbeat_ms_ago === undefined ? "–" : fmt(n.last_heartbeat_ms_ago) + " ms ago")),
      el("tr", {}, el("th", {}, "fenced ghosts"), el("td", { class: "num" }, fmt(ghosts))),
      n.dead_because ? el("tr", {}, el("th", {}, "dead because"), el("td", { class: "num" }, n.dead_because)) : null)),
    role === "leader" ? null : el("div", { class: "row" },
      el("button", { class: "danger", "data-action": "kill", onclick: () => labAction("/kill/" + n.node_id) }, "kill"),
      el("button", { "data-action": "pause", onclick: () => labAction("/pause/" + n.node_id + "?ms=2000") }, "pause 2 s")));
}

function renderLab(s) {
  const lab = s.lab, q = lab.quorum || {}, cost = s.cost || {};
  const ghosts = new Map();
  for (const g of lab.retired || []) {
    if (g.fenced) ghosts.set(g.node_id, (ghosts.get(g.node_id) || 0) + 1);
  }
  const strong = q.W + q.R > q.N;
  document.getElementById("title").textContent = "CloudCart lab";
  document.getElementById("summary").textContent =
    `W ${q.W} · R ${q.R} · N ${q.N} · W + R ${strong ? ">" : "≤"} N · ` +
    `${fmt(q.total_alive)} alive · can write: ${q.can_write ? "yes" : "no"}`;
  const gw = s.gateway, rl = gw && gw.rate_limiter, g = gw && gw.gateway;
  push("gw.limited", rate(g && g.rate_limited, page.prev && page.prev.gateway && page.prev.gateway.gateway
    && page.prev.gateway.gateway.rate_limited, page.prev ? (performance.now() - page.prev.at) / 1000 : 0));
  const keyIn = el("input", { type: "text", id: "lab-key", value: "cart:1", "aria-label": "key" });
  const valIn = el("input", { type: "text", id: "lab-value", value: "{\"items\":1}", "aria-label": "value" });
  const nodes = [];
  if (lab.leader) nodes.push(nodeCard(lab.leader, "leader", ghosts.get(lab.leader.node_id) || 0));
  for (const f of lab.followers || []) nodes.push(nodeCard(f, "follower", ghosts.get(f.node_id) || 0));
  return [
    el("section", { id: "nodes", class: "wide" }, el("h2", {}, "nodes"),
      el("div", { class: "cards small" }, nodes),
      el("div", { class: "row" },
        el("button", { "data-action": "spawn", onclick: () => labAction("/spawn") }, "spawn a follower"),
        el("span", { class: "muted" }, `auto-spawn ${lab.auto_spawn && lab.auto_spawn.enabled ? "on" : "off"} · ` +
          `${fmt(lab.respawns)} respawns · ${fmt(lab.fenced)} ghosts fenced`))),
    el("section", { id: "quorum" }, el("h2", {}, "quorum"),
      el("div", { class: "metrics" },
        metric("W (sync acks)", fmt(q.W)), metric("R (reads asked)", fmt(q.R)),
        metric("N (followers)", fmt(q.N)),
        el("div", { class: "metric", "data-metric": "strong" },
          el("div", { class: "value " + (strong ? "ok" : "bad") }, strong ? "W + R > N" : "W + R ≤ N"),
          el("div", { class: "label" }, strong ? "every read meets the last write" : "a read can miss the sync set")),
        el("div", { class: "metric", "data-metric": "can_write" },
          el("div", { class: "value " + (q.can_write ? "ok" : "bad") }, q.can_write ? "yes" : "no"),
          el("div", { class: "label" }, "can write")),
        el("div", { class: "metric", "data-metric": "cost" },
          el("div", { class: "value " + (cost.within_budget ? "" : "bad") }, `$${fmt(cost.per_hour)}/h`),
          el("div", { class: "label" }, `budget $${fmt(cost.budget_per_hour)}/h`)))),
    el("section", { id: "gateway" }, el("h2", {}, "gateway rate limit"),
      rl ? [el("div", { class: "metrics" },
        metric("limit", rl.enabled ? `${fmt(rl.max_requests)} per ${fmt(rl.window_seconds, 0)} s` : "off"),
        metric("allowed", fmt(rl.allowed)),
        metric("refused (429) /s", fmt(page.series.get("gw.limited").slice(-1)[0]), "gw.limited", "bad")),
        el("table", { id: "windows" }, el("thead", {}, el("tr", {}, el("th", {}, "client"),
          el("th", { class: "num" }, "in its window"), el("th", { class: "num" }, "resets in"))),
          el("tbody", {}, (rl.windows || []).length ? rl.windows.map((w) =>
            el("tr", { "data-client": w.client }, el("td", {}, w.client),
              el("td", { class: "num " + (w.count >= rl.max_requests ? "bad" : "") },
                `${fmt(w.count)} / ${fmt(rl.max_requests)}`),
              el("td", { class: "num" }, `${fmt(w.reset_ms / 1000, 0)} s`)))
            : el("tr", {}, el("td", { class: "muted", colspan: 3 }, "no client in a window"))))]
         : el("p", { class: "bad" }, "the gateway does not answer")),
    el("section", { id: "data" }, el("h2", {}, "write and read"),
      el("div", { class: "row" }, keyIn, valIn,
        el("button", { "data-action": "write", onclick: () => labAction("/write", { key: keyIn.value, value: valIn.value }) }, "write"),
        el("button", { "data-action": "read", onclick: () => labRead(keyIn.value) }, "read")),
      el("pre", { class: "out", id: "lab-out" }, "")),
    eventsSection(),
  ];
}

/* ---- the loop ----------------------------------------------------------- */

let timer = null;
function schedule(ms) {
  clearTimeout(timer);
  timer = setTimeout(poll, ms);
}

async function poll() {
  let s;
  try {
    const r = await fetch("state?after=" + page.lastEvent, { headers: authHeaders(), cache: "no-store" });
    if (r.status === 401) {
      document.getElementById("token-form").hidden = false;
      showError("this dashboard needs the cluster token from here: type it above");
      return;
    }
    if (!r.ok) throw new Error(`state answered ${r.status}`);
    s = await r.json();
  } catch (e) {
    showError(`no answer from the controller (${e.message}); retrying`);
    schedule(POLL_MS);
    return;
  }
  showError("");
  const now = performance.now();
  const dt = page.prev ? (now - page.prev.at) / 1000 : 0;
  takeEvents(s);
  /* Keep the output box across redraws: it is the user's. */
  const out = document.getElementById("lab-out");
  const kept = out ? out.textContent : "";
  const focused = document.activeElement && document.activeElement.id;
  const inputs = {};
  for (const i of document.querySelectorAll("#app input")) inputs[i.id] = i.value;
  let parts;
  try {
    parts = s.mode === "lab" ? renderLab(s) : renderCluster(s, dt);
  } catch (e) {
    /* A state this page does not understand: say so, keep polling. */
    console.error("dashboard: cannot draw this state:", e);
    showError(`cannot draw the state (${e.message}); retrying`);
    schedule(POLL_MS);
    return;
  }
  document.getElementById("app").replaceChildren(...parts.filter(Boolean));
  for (const [id, v] of Object.entries(inputs)) {
    const i = document.getElementById(id);
    if (i) i.value = v;
  }
  if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  const out2 = document.getElementById("lab-out");
  if (out2) out2.textContent = kept;
  document.getElementById("updated").textContent = "updated " + clock(s.now_ms);
  document.body.dataset.mode = s.mode;
  document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  page.prev = { ...s, at: now };
  schedule(POLL_MS);
}

document.getElementById("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  page.token = document.getElementById("token").value.trim();
  sessionStorage.setItem("kv-token", page.token);
  document.getElementById("token-form").hidden = true;
  schedule(0);
});

/* For the browser tests (tests/browser/): a copy of one time series. */
window.kvSeries = (name) => (page.series.get(name) || []).slice();

schedule(0);
