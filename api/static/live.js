// Live updates: the server sends the projection position (server-sent events) whenever the
// views move on; the page fetches itself again and swaps in its live parts (no full reload).
(function () {
  "use strict";
  // Parts a page loads after itself (costly to compute): `data-src` names their URL.
  function loadParts() {
    document.querySelectorAll("[data-src]").forEach(function (part) {
      fetch(part.dataset.src, { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) { if (html !== null) part.innerHTML = html; })
        .catch(function () {});
    });
  }
  if (window.fetch) loadParts();
  var src = document.body.dataset.live;
  if (!src || !window.EventSource || !window.fetch) return;
  var state = document.getElementById("live-state");
  var busy = false, again = false;

  function seen() {
    var max = 0;
    document.querySelectorAll("[data-position]").forEach(function (el) {
      max = Math.max(max, Number(el.dataset.position) || 0);
    });
    return max;
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    var before = seen();
    var url = document.body.dataset.page || window.location.href;
    fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live-part]").forEach(function (part) {
          var next = fresh.getElementById(part.id);
          if (next) part.innerHTML = next.innerHTML;
        });
        document.querySelectorAll("[data-position]").forEach(function (el) {
          if (before && Number(el.dataset.position) > before) el.classList.add("fresh");
        });
        loadParts();
        var foot = fresh.querySelector(".foot");
        if (foot) document.querySelector(".foot").innerHTML = foot.innerHTML;
        document.dispatchEvent(new CustomEvent("hub:updated"));
      })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
      });
  }

  var source = new EventSource(src);
  source.addEventListener("open", function () {
    if (state) { state.hidden = false; state.classList.remove("off"); state.textContent = "live"; }
  });
  source.addEventListener("error", function () {
    if (state) { state.classList.add("off"); state.textContent = "reconnecting"; }
  });
  source.addEventListener("position", refresh);
})();
