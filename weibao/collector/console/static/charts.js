// weibao console: draws each device chart from the JSON beside it with uPlot (vendored: uPlot.iife.min.js).
(function () {
  "use strict";
  var colours = ["#1f5fbf", "#c62828", "#1a7f37", "#b26a00", "#7b1fa2", "#00838f", "#5d4037", "#455a64"];
  function draw(fig) {
    var data = JSON.parse(fig.querySelector(".chart-data").textContent);
    var box = fig.querySelector(".plot");
    var series = [{}].concat(data.lines.map(function (l, i) {
      return { label: l.label, stroke: colours[i % colours.length], width: 1.5, spanGaps: false };
    }));
    var from = Date.parse(data.from) / 1000, to = Date.parse(data.to) / 1000;
    var y = data.metric === "up" ? { range: [-0.05, 1.05] } : {};
    var opts = { width: Math.max(280, box.clientWidth), height: 220, series: series,
                 scales: { x: { time: true, range: function () { return [from, to]; } }, y: y },
                 axes: [{}, { label: data.unit || "" }], legend: { show: data.lines.length > 1 },
                 // contract time (Asia/Shanghai) on a 24-hour clock, whatever the browser's zone
                 tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Asia/Shanghai"); },
                 fmtDate: function (tpl) { return uPlot.fmtDate(tpl.replace("{h}", "{HH}").replace("{aa}", "")); } };
    var plot = new uPlot(opts, [data.x].concat(data.lines.map(function (l) { return l.y; })), box);
    fig.uplot = plot;  // tests and the resize below reach the chart here
    return plot;
  }
  document.addEventListener("DOMContentLoaded", function () {
    var plots = Array.prototype.map.call(document.querySelectorAll("figure.chart"), draw);
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () {
        plots.forEach(function (p) { p.setSize({ width: Math.max(280, p.root.parentNode.clientWidth), height: 220 }); });
      }, 150);
    });
  });
})();
