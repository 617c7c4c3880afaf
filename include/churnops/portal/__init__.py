"""The drift-report portal: the analysts' pages inside the Airflow UI ("Drift reports").

- :mod:`~churnops.portal.queries`: what a page shows, read through the warehouse's stores
  (monitoring, scoring, ops) on a read-only resource, as plain data.
- :mod:`~churnops.portal.charts`: that data as chart figures (plain JSON).
- :mod:`~churnops.portal.views`: one function per page: the template, its context, its
  tables (each also a CSV download) and the HTTP status.
- :mod:`~churnops.portal.app`: the FastAPI app (no Airflow import: the plugin,
  ``plugins/churnops_portal.py``, hands it Airflow's sign-in dependency and mounts it).
- ``templates/`` (Jinja2, autoescaped) and ``static/`` (the page script and style).

Charts: plotly.js, the copy the ``plotly`` package ships (``plotly/package_data/
plotly.min.js``, already in the environment through Evidently), served by the app itself.
Checked in Chromium under this app's Content-Security-Policy (``script-src 'self'``, no
``'unsafe-eval'``): scatter, bar and heatmap traces draw, hover, zoom and click without a
single violation (tests/browser asserts it on every page). Plotly's WebGL traces
(``scattergl``, ...) compile code at run time and would need ``'unsafe-eval'``: the portal
uses none. Plotly inserts its own stylesheet, so ``style-src`` allows ``'unsafe-inline'``
(styles only; no inline script runs). Vega-Lite with vega-embed was the other candidate:
its expression language compiles code at run time (``'unsafe-eval'``) unless the separate
interpreter build is loaded, and it would be one more package to bring in, where plotly
is already installed and kept.
"""
