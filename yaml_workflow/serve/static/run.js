// The run page: poll the run's JSON every second and update the step table, the graph
// and the progress bars in place (no reload). Text is set with textContent only.
(function () {
  "use strict";
  var root = document.getElementById("run");
  if (!root) return;
  var url = root.getAttribute("data-status-url");
  var FINISHED = { completed: 1, failed: 1, cancelled: 1 };

  function byStep(selector) {
    var map = new Map();
    document.querySelectorAll(selector).forEach(function (el) { map.set(el.getAttribute("data-step"), el); });
    return map;
  }
  var rows = byStep("#steps tr[data-step]");
  var nodes = byStep("svg.graph g.node[data-step]");

  function duration(s) {
    if (typeof s !== "number") return "";
    if (s < 10) return s.toFixed(2) + "s";
    if (s < 60) return s.toFixed(1) + "s";
    var m = Math.floor(s / 60), sec = Math.floor(s % 60);
    if (m < 60) return m + "m" + (sec < 10 ? "0" : "") + sec + "s";
    var h = Math.floor(m / 60); m = m % 60;
    return h + "h" + (m < 10 ? "0" : "") + m + "m";
  }
  // The same wording as the server's `resources` filter (render.py).
  function resources(r) {
    if (!r || typeof r !== "object") return "";
    var parts = [];
    Object.keys(r).forEach(function (key) {
      var v = r[key];
      if (typeof v !== "number" || !v) return;
      var label = key.replace(/_seconds$/, "").replace(/_kb$/, "").replace("children_", "child ").replace(/_/g, " ")
        .replace("process max rss", "rss").replace("child max rss", "child rss");
      if (/_seconds$/.test(key)) parts.push(label + " " + Number(v.toPrecision(3)) + "s");
      else if (/_kb$/.test(key)) parts.push(label + " " + Math.round(v / 1024) + " MB");
      else parts.push(label + " " + v);
    });
    return parts.join(", ");
  }
  function setText(parent, selector, text) {
    var el = parent.querySelector(selector);
    if (el && el.textContent !== text) el.textContent = text;
    return el;
  }
  function badge(cell, status, label) {
    if (!cell) return;
    var span = cell.querySelector(".badge");
    if (!span) { span = document.createElement("span"); cell.textContent = ""; cell.appendChild(span); }
    span.className = "badge b-" + status;
    span.textContent = label;
  }
  function progressCell(cell, p) {
    if (!cell) return;
    if (!p || !p.total) { if (cell.childNodes.length) cell.textContent = ""; return; }
    var bar = cell.querySelector("progress"), label = cell.querySelector("span");
    if (!bar) {
      cell.textContent = "";
      bar = document.createElement("progress"); label = document.createElement("span");
      label.className = "small"; cell.appendChild(bar); cell.appendChild(document.createTextNode(" ")); cell.appendChild(label);
    }
    bar.max = p.total; bar.value = p.done || 0;
    label.textContent = (p.done || 0) + "/" + p.total + (p.failed ? ", " + p.failed + " failed" : "");
  }

  function apply(run) {
    document.body.setAttribute("data-run-status", run.status || "");
    badge(root.querySelector("h1"), run.status || "unknown", run.status || "unknown");
    var pr = run.progress || {};
    var bar = document.getElementById("run-progress");
    if (bar) { bar.max = pr.total || 1; bar.value = pr.done || 0; }
    setText(root, '[data-field="run-progress"]', (pr.done || 0) + "/" + (pr.total || 0) + " steps");
    setText(root, '[data-field="run-errors"]', "errors " + (pr.errors || 0) + ", retries " + (pr.retries || 0));
    setText(root, '[data-field="elapsed"]', duration(pr.elapsed));
    (run.steps || []).forEach(function (step) {
      var status = step.status, row = rows.get(step.step), node = nodes.get(step.step);
      if (node) {
        node.setAttribute("class", "node s-" + status.replace(/[^a-z]/g, ""));
        var title = node.querySelector("title");
        if (title) title.textContent = step.step + ": " + status;
      }
      if (!row) return;
      row.setAttribute("data-status", status);
      badge(row.querySelector('[data-col="status"]'), status, step.stalled ? "stalled" : status);
      setText(row, '[data-col="attempts"]', step.attempts ? String(step.attempts) : "");
      setText(row, '[data-col="duration"]', duration(step.duration));
      setText(row, '[data-col="host"]', step.host || "");
      setText(row, '[data-col="error"]', step.stalled || step.error || step.reason || "");
      setText(row, '[data-col="resources"]', resources(step.resources));
      progressCell(row.querySelector('[data-col="progress"]'), step.progress);
    });
  }

  function tick() {
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (run) {
        if (run) apply(run);
        // A finished run changes only when someone acts on it: look less often.
        setTimeout(tick, run && FINISHED[run.status] ? 5000 : 1000);
      })
      .catch(function () { setTimeout(tick, 2000); });
  }
  setTimeout(tick, 1000);
})();
