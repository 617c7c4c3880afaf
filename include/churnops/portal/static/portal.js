// The portal's only script (CSP: script-src 'self'). Draws each figure the page carries
// as JSON (<script type="application/json" class="figure">) with plotly.js, opens the
// page a clicked point names (its customdata: a path inside this app), and makes the
// feature picker navigate.
"use strict";

(function () {
  const base = document.body.dataset.base || "";

  function inside(path) {
    // Only paths of this app: no scheme, no host, no way up.
    return typeof path === "string" && /^[A-Za-z0-9_\-\/?=&.]+$/.test(path) &&
      !path.includes("..") && !path.startsWith("/");
  }

  function draw(block) {
    const target = document.getElementById(block.dataset.target);
    if (!target || typeof Plotly === "undefined") return;
    const figure = JSON.parse(block.textContent);
    const config = { responsive: true, displaylogo: false, scrollZoom: false };
    Plotly.newPlot(target, figure.data, figure.layout, config).then(function () {
      target.dataset.drawn = "true";
      target.on("plotly_click", function (event) {
        const point = event.points && event.points[0];
        if (point && inside(point.customdata)) {
          window.location.assign(base + "/" + point.customdata);
        }
      });
    });
  }

  function start() {
    document.querySelectorAll("script.figure").forEach(draw);
    document.querySelectorAll("select.navigate").forEach(function (select) {
      select.addEventListener("change", function () {
        if (/^[A-Za-z0-9_]+$/.test(select.value)) {
          window.location.assign(select.dataset.prefix + select.value);
        }
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
