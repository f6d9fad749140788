// SPDX-License-Identifier: LGPL-2.1-or-later
// The flcluster status page: polls the scheduler's JSON endpoints and draws
// them. Everything from the cluster is shown as text (textContent), never
// as markup. A reader token, when the cluster has tokens, is kept in this
// tab's sessionStorage and sent as "Authorization: Bearer".
"use strict";

(function () {
  const TOKEN_KEY = "flcluster-token";
  const params = new URLSearchParams(location.search);
  const INTERVAL_MS = Math.max(250, Number(params.get("interval")) || 2000);
  const TIMEOUT_MS = 5000;
  // The history changes only when an iteration ends: fetched then, and now and then.
  const HISTORY_EVERY_MS = 15000;
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  let lastIteration = null, lastPhase = null, historyAt = 0, history = null;
  let timer = null, busy = false;

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(tick, ms);
  }

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return "";
    }
  }

  async function get(path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    const headers = { Accept: "application/json" };
    const t = token();

    if (t)
      headers.Authorization = "Bearer " + t;
    try {
      const r = await fetch(path, { headers, signal: ctl.signal, cache: "no-store", credentials: "omit" });
      if (!r.ok) {
        let why = "";
        try {
          why = (await r.json()).error_message || "";
        } catch (e) { /* not JSON */ }
        const err = new Error(path + ": HTTP " + r.status + (why ? " (" + why + ")" : ""));
        err.status = r.status;
        throw err;
      }
      return await r.json();
    } catch (e) {
      if (e.name === "AbortError")
        throw new Error(path + ": no answer within " + TIMEOUT_MS / 1000 + " s");
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  function text(id, value) {
    const el = $(id);
    if (el)
      el.textContent = value;
  }

  function el(tag, attrs, content) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {}))
      e.setAttribute(k, v);
    if (content !== undefined)
      e.textContent = content;
    return e;
  }

  function duration(ms) {
    if (!(ms > 0))
      return "0 s";
    const s = Math.round(ms / 1000);
    if (s < 60)
      return s + " s";
    if (s < 3600)
      return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function number(v, digits) {
    return typeof v === "number" && isFinite(v) ? v.toFixed(digits) : "–";
  }

  // ---- the header and the current iteration

  function renderState(state) {
    const badge = $("cluster-state");
    const s = state.cluster_state || "?";
    badge.textContent = s;
    badge.className = "badge " + (s === "CLUSTER_READY" ? "ok" : s === "CLUSTER_EXIT" || s === "NODE_TIMEOUT" ? "bad" : "warn");
    text("iteration-number", String(state.iteration));
    text("iteration-total", String(state.fl_iteration_num));
    text("phase", state.iteration_phase || "–");
  }

  function bar(id, textId, value, limit) {
    const pct = limit > 0 ? Math.min(100, (100 * value) / limit) : 0;
    $(id).style.width = pct + "%";
    text(textId, value + " / " + limit);
  }

  function windowText(deadline, now, span, open, closedWhy) {
    if (!open)
      return closedWhy;
    if (!(deadline > 0))
      return "not open";
    return deadline > now ? duration(deadline - now) + " left of " + duration(span) : "over";
  }

  function renderIteration(it) {
    const now = it.now_ms;
    const collecting = it.phase === "COLLECTING";
    const updateOpen = it.update_model_deadline_ms > 0;

    text("job-name", it.fl_name + (it.instance_name ? " · " + it.instance_name : "") + (it.enabled ? "" : " · disabled"));
    bar("bar-admitted", "admitted-text", it.admitted, it.start_fl_job_threshold);
    bar("bar-updates", "updates-text", it.updates, it.update_threshold);
    text("window-start", windowText(it.start_fl_job_deadline_ms, now, it.start_fl_job_time_window,
      collecting && !updateOpen, updateOpen ? "closed: the devices are in" : "closed"));
    text("window-update", windowText(it.update_model_deadline_ms, now, it.update_model_time_window,
      collecting && updateOpen, collecting ? "opens when the devices are in" : "closed"));
    text("window-global", windowText(it.global_deadline_ms, now, it.global_iteration_time_window,
      it.phase !== "FINISHED" && it.phase !== "WAITING", "–"));
    const r = it.rounds || {};
    text("rounds", ["startFLJob", "updateModel", "getModel", "pushMetrics"].map((k) =>
      k + " " + ((r[k] && r[k].total) || 0) + " (" + ((r[k] && r[k].accepted) || 0) + ")").join(", "));
  }

  // ---- the servers

  function yesNo(td, v, yes, no) {
    td.textContent = v ? yes : no;
    td.className = v ? "yes" : "no";
  }

  function renderNodes(nodes) {
    const list = (nodes.node_ids || []).slice().sort((a, b) => Number(a.rank_id) - Number(b.rank_id));
    const tbody = $("nodes").tBodies[0];
    const rows = [];
    let alive = 0;

    for (const n of list) {
      const tr = el("tr", { "data-node-id": n.node_id });
      tr.append(el("td", {}, n.rank_id), el("td", {}, n.node_id), el("td", {}, n.address + ":" + n.fl_server_port));
      const cells = [el("td"), el("td"), el("td"), el("td")];
      yesNo(cells[0], n.alive, "yes", "dead");
      yesNo(cells[1], n.connected, "yes", "no");
      yesNo(cells[2], n.in_sync, "in sync", "syncing");
      cells[3].textContent = n.leaving ? "leaving" : "";
      tr.append(...cells, el("td", {}, String(n.pid)));
      rows.push(tr);
      alive += n.alive ? 1 : 0;
    }
    tbody.replaceChildren(...rows);
    text("nodes-summary", "(" + alive + " of " + list.length + " alive)");
  }

  // ---- the charts: hand-drawn SVG

  function svg(tag, attrs, content) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {}))
      e.setAttribute(k, v);
    if (content !== undefined)
      e.textContent = content;
    return e;
  }

  function ticks(lo, hi, n) {
    const span = hi - lo, raw = span / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => span / s <= n) || 10 * mag;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
      out.push(Number(v.toPrecision(12)));
    return out;
  }

  // points: [{x, y, fail}], y null where there is none.
  function chart(svgEl, points, opts) {
    const W = 480, H = 220, L = 46, R = 12, T = 10, B = 28;
    const have = points.filter((p) => typeof p.y === "number" && isFinite(p.y));
    const nodes = [];

    if (have.length === 0) {
      svgEl.replaceChildren(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" },
        opts.empty || "no data yet"));
      return;
    }
    let x0 = Math.min(...have.map((p) => p.x)), x1 = Math.max(...have.map((p) => p.x));
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    let y0 = opts.yMin !== undefined ? opts.yMin : Math.min(...have.map((p) => p.y));
    let y1 = opts.yMax !== undefined ? opts.yMax : Math.max(...have.map((p) => p.y));
    if (y0 === y1) { y0 -= 1; y1 += 1; }
    if (opts.yMin === undefined) y0 -= (y1 - y0) * 0.05;
    if (opts.yMax === undefined) y1 += (y1 - y0) * 0.05;
    if (opts.floor !== undefined) y0 = Math.max(y0, opts.floor);
    const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const Y = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);

    for (const v of ticks(y0, y1, 5)) {
      nodes.push(svg("line", { class: "grid", x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
      nodes.push(svg("text", { x: L - 4, y: Y(v) + 3, "text-anchor": "end" }, opts.format ? opts.format(v) : String(v)));
    }
    for (const v of ticks(x0, x1, 8).filter((v) => Number.isInteger(v)))
      nodes.push(svg("text", { x: X(v), y: H - B + 14, "text-anchor": "middle" }, String(v)));
    nodes.push(svg("text", { x: (L + W - R) / 2, y: H - 3, "text-anchor": "middle" }, "iteration"));
    nodes.push(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    nodes.push(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    nodes.push(svg("polyline", { class: "line", points: have.map((p) => X(p.x) + "," + Y(p.y)).join(" ") }));
    for (const p of have) {
      const c = svg("circle", { class: "point" + (p.fail ? " fail" : ""), cx: X(p.x), cy: Y(p.y), r: 3.5,
        "data-iteration": p.x, "data-value": p.y });
      c.append(svg("title", {}, "iteration " + p.x + ": " + (opts.format ? opts.format(p.y) : p.y) + (p.fail ? " (abandoned)" : "")));
      nodes.push(c);
    }
    svgEl.replaceChildren(...nodes);
  }

  function renderHistory(h) {
    const all = h.iterations || [];
    const instance = all.length ? all[all.length - 1].instanceName : h.instance_name;
    const mine = all.filter((e) => e.instanceName === instance);
    const point = (e, y) => ({ x: e.currentIteration, y, fail: e.iterationResult !== "success" });

    chart($("chart-accuracy"), mine.map((e) => point(e, e.metricsAuc)),
      { yMin: 0, yMax: 1, format: (v) => (100 * v).toFixed(0) + "%", empty: "no pushMetrics yet" });
    chart($("chart-loss"), mine.map((e) => point(e, e.metricsLoss)),
      { floor: 0, format: (v) => v.toFixed(2), empty: "no pushMetrics yet" });
    chart($("chart-duration"), mine.map((e) => point(e, e.iterationExecutionTime / 1000)),
      { floor: 0, format: (v) => v.toFixed(1), empty: "no iteration has ended yet" });

    const rows = mine.slice(-10).reverse().map((e) => {
      const v = e.clientVisitedInfo || {};
      const tr = el("tr");
      tr.append(el("td", {}, String(e.currentIteration)), el("td", { class: e.iterationResult === "success" ? "yes" : "no" },
        e.iterationResult), el("td", {}, number(e.metricsAuc, 4)), el("td", {}, number(e.metricsLoss, 4)),
        el("td", {}, number(e.iterationExecutionTime / 1000, 1)),
        el("td", {}, (v.startFLJobAcceptClientNum || 0) + " / " + (v.startFLJobTotalClientNum || 0)),
        el("td", {}, (v.updateModelAcceptClientNum || 0) + " / " + (v.updateModelTotalClientNum || 0)),
        el("td", { title: e.endTime || "" }, (e.endTime || "").split(" ").pop().slice(0, 8)));
      return tr;
    });
    $("history").tBodies[0].replaceChildren(...rows);
  }

  // ---- the loop

  function showError(e) {
    const p = $("error");
    let msg = e.message || String(e);
    if (e.status === 401)
      msg = "The cluster asks for a token (HTTP 401): enter a reader token above.";
    else if (e.status === 403)
      msg = "This token may not read the cluster (HTTP 403).";
    p.textContent = msg;
    p.hidden = false;
  }

  async function tick() {
    if (busy)
      return;   // the one in flight schedules the next
    busy = true;
    try {
      const [state, nodes, iteration] = await Promise.all([get("state"), get("nodes"), get("iteration")]);
      renderState(state);
      renderNodes(nodes);
      renderIteration(iteration);
      const now = Date.now();
      if (history === null || state.iteration !== lastIteration || state.iteration_phase !== lastPhase ||
          now - historyAt > HISTORY_EVERY_MS) {
        history = await get("iterations");
        historyAt = now;
        lastIteration = state.iteration;
        lastPhase = state.iteration_phase;
        renderHistory(history);
      }
      $("error").hidden = true;
      text("last-update", new Date().toLocaleTimeString());
    } catch (e) {
      showError(e);
    } finally {
      busy = false;
      schedule(INTERVAL_MS);
    }
  }

  function setupToken() {
    const input = $("token");
    input.value = token();
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      try {
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      } catch (e) { /* storage refused: the token lasts until reload */ }
      history = null;
      schedule(0);
    });
    $("token-clear").addEventListener("click", () => {
      try {
        sessionStorage.removeItem(TOKEN_KEY);
      } catch (e) { /* nothing stored */ }
      input.value = "";
    });
  }

  setupToken();
  tick();
})();
