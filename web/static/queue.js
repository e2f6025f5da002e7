// The queue's live update: every few seconds ask for the table body with the page's own filters and swap
// it in when it changed. No library; the server sends escaped HTML it rendered itself (same origin).
(function () {
  "use strict";
  var live = document.getElementById("live");
  var body = document.getElementById("queue-rows");
  if (!live || !body) { return; }
  var seconds = Math.max(2, parseInt(live.getAttribute("data-poll"), 10) || 15);
  var seen = live.getAttribute("data-newest") || "0";
  var query = live.getAttribute("data-query") || "";
  function refresh() {
    var url = "/tickets/rows?" + query + (query ? "&" : "") + "seen=" + encodeURIComponent(seen);
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } }).then(function (response) {
      if (response.status === 401) { window.location.reload(); return null; }  // signed out: the page goes to sign-in
      if (!response.ok) { return null; }
      var newest = response.headers.get("X-Newest-Ticket") || seen;
      var count = response.headers.get("X-Ticket-Count");
      var caption = document.getElementById("queue-count");
      if (caption && count !== null) { caption.textContent = count + " ticket(s)"; }
      return response.text().then(function (html) {
        if (html !== body.getAttribute("data-last")) {
          body.innerHTML = html;
          body.setAttribute("data-last", html);
        }
        if (parseInt(newest, 10) > parseInt(seen, 10)) {
          live.textContent = "New tickets arrived (" + new Date().toLocaleTimeString() + ").";
        }
        seen = newest;
      });
    }).catch(function () { /* offline for a moment: try again next time */ });
  }
  window.setInterval(refresh, seconds * 1000);
})();
