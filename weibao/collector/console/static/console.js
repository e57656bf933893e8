// weibao console: clocks count down every second; a page with data-refresh replaces its main part in place.
(function () {
  "use strict";
  var zh = document.documentElement.lang !== "en";
  function span(ms) {
    var m = Math.floor(Math.abs(ms) / 60000), h = Math.floor(m / 60), d = Math.floor(h / 24);
    if (zh) return d ? d + "天" + (h % 24) + "小时" : h ? h + "小时" + (m % 60) + "分" : m + "分";
    return d ? d + " d " + (h % 24) + " h" : h ? h + " h " + (m % 60) + " min" : m + " min";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".clock[data-deadline]").forEach(function (el) {
      var left = Date.parse(el.dataset.deadline) - now, lead = Number(el.dataset.leadMs);
      var cls = left <= 0 ? "s-breached" : left <= lead ? "s-due" : "s-running";
      el.classList.remove("s-breached", "s-due", "s-running");
      el.classList.add(cls);
      var out = el.querySelector(".left");
      if (out) out.textContent = (left <= 0 ? (zh ? "超时 " : "overdue ") : "") + span(left);
    });
  }
  function busy(main) {
    // never throw away what someone is typing or about to submit
    var a = document.activeElement;
    if (a && main.contains(a) && a.matches("input, textarea, select, button")) return true;
    return Array.prototype.some.call(main.querySelectorAll("textarea, input[type=text]"), function (f) { return f.value; });
  }
  function refresh(main, every) {
    setTimeout(function again() {
      if (document.hidden || busy(main)) { setTimeout(again, every); return; }
      fetch(location.href, { headers: { "X-Weibao-Partial": "1" }, credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) { location.reload(); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined && !busy(main)) { main.innerHTML = html; tick(); main.dispatchEvent(new Event("refreshed")); }
        })
        .catch(function () { /* the next round tries again */ })
        .then(function () { setTimeout(again, every); });
    }, every);
  }
  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
    var main = document.getElementById("main");
    var every = main && Number(main.dataset.refresh);
    if (every) refresh(main, every * 1000);
  });
})();
