// The runs list: rows are drawn by the server; this refreshes the status, duration,
// progress and hosts of the rows on the page every three seconds.
(function () {
  "use strict";
  var table = document.getElementById("runs");
  if (!table) return;
  var url = table.getAttribute("data-poll");
  function duration(s) {
    if (typeof s !== "number") return "";
    if (s < 10) return s.toFixed(2) + "s";
    if (s < 60) return s.toFixed(1) + "s";
    var m = Math.floor(s / 60), sec = Math.floor(s % 60);
    if (m < 60) return m + "m" + (sec < 10 ? "0" : "") + sec + "s";
    var h = Math.floor(m / 60); m = m % 60;
    return h + "h" + (m < 10 ? "0" : "") + m + "m";
  }
  function tick() {
    fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (listing) {
        if (listing) {
          var rows = new Map();
          table.querySelectorAll("tr[data-run]").forEach(function (tr) { rows.set(tr.getAttribute("data-run"), tr); });
          listing.runs.forEach(function (run) {
            var tr = rows.get(run.run_id);
            if (!tr) return;
            var status = run.status || "unknown";
            tr.setAttribute("data-status", status);
            var badge = tr.querySelector('[data-col="status"] .badge');
            if (badge) { badge.className = "badge b-" + status; badge.textContent = status; }
            tr.querySelector('[data-col="duration"]').textContent = duration(run.duration);
            tr.querySelector('[data-col="hosts"]').textContent = (run.hosts || []).join(", ");
            var cell = tr.querySelector('[data-col="progress"]');
            if (run.steps_total) {
              var bar = cell.querySelector("progress"), label = cell.querySelector("span");
              if (!bar) {
                cell.textContent = ""; bar = document.createElement("progress"); label = document.createElement("span");
                cell.appendChild(bar); cell.appendChild(document.createTextNode(" ")); cell.appendChild(label);
              }
              bar.max = run.steps_total; bar.value = run.steps_done || 0;
              label.textContent = (run.steps_done || 0) + "/" + run.steps_total;
            }
          });
        }
        setTimeout(tick, 3000);
      })
      .catch(function () { setTimeout(tick, 5000); });
  }
  setTimeout(tick, 3000);
})();
