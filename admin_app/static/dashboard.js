/* The dashboard's refresh: every few seconds (data-refresh-seconds) it asks /dashboard/<customer>/data for the
   figures as JSON and puts each formatted text into the element whose data-k names it and each fraction into the
   bar whose data-bar names it. When the page would need elements it does not have (a new site, category or
   period), it reloads instead. No library, no inline script (the CSP forbids it). */
(function () {
  "use strict";
  var root = document.getElementById("dashboard");
  if (!root) { return; }
  var url = root.getAttribute("data-refresh-url");
  var seconds = Number(root.getAttribute("data-refresh-seconds")) || 15;
  var live = document.getElementById("dash-live");
  var known = keys();

  function keys() {
    var found = [];
    root.querySelectorAll("[data-bar]").forEach(function (el) { found.push(el.getAttribute("data-bar")); });
    return found.sort().join("|");
  }

  function setBar(el, fraction) {
    var scale = Number(el.getAttribute("data-scale")) || 100;
    var size = (Math.max(0, Math.min(1, fraction)) * scale).toFixed(2);
    if (el.getAttribute("data-axis") === "y") {
      var base = Number(el.getAttribute("data-base"));
      el.setAttribute("height", size);
      el.setAttribute("y", (base - size).toFixed(2));
    } else {
      el.setAttribute("width", size);
    }
  }

  function apply(data) {
    var bars = Object.keys(data.bars).sort().join("|");
    if (bars !== known) { window.location.reload(); return; }
    root.querySelectorAll("[data-k]").forEach(function (el) {
      var text = data.display[el.getAttribute("data-k")];
      if (text !== undefined && el.textContent !== text) { el.textContent = text; }
    });
    root.querySelectorAll("[data-bar]").forEach(function (el) {
      setBar(el, data.bars[el.getAttribute("data-bar")]);
    });
    root.querySelectorAll("[data-tick]").forEach(function (el) {
      var fraction = data.bars[el.getAttribute("data-tick")];
      if (fraction === undefined) { return; }
      var y = (Number(el.getAttribute("data-base")) - fraction * Number(el.getAttribute("data-scale"))).toFixed(2);
      el.setAttribute("y1", y);
      el.setAttribute("y2", y);
    });
    root.querySelectorAll("[data-bar-tick]").forEach(function (el) {
      var x = (data.bars.elapsed * 100).toFixed(2);
      el.setAttribute("x1", x);
      el.setAttribute("x2", x);
    });
  }

  function checked(ok, message) {
    if (!live) { return; }
    live.classList.toggle("is-stale", !ok);
    live.setAttribute("title", ok ? "Checked at " + new Date().toLocaleTimeString() : message);
  }

  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (response.redirected || response.status === 401 || response.status === 302) {
          window.location.reload();   // the session ended: the page asks to sign in again
          return null;
        }
        if (!response.ok) { throw new Error("the server answered " + response.status); }
        return response.json();
      })
      .then(function (data) {
        if (data) { apply(data); checked(true); }
      })
      .catch(function (error) { checked(false, "Refresh failed: " + error.message); })
      .then(function () { window.setTimeout(refresh, seconds * 1000); });
  }

  window.setTimeout(refresh, seconds * 1000);
})();
