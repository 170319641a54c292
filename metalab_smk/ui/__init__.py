"""The web dashboard (``metalab ui``) and the HTML report (``metalab report``).

``source`` reads a store (the seam for other back ends), ``query`` and ``plots`` turn its
tables into pages and plot data, ``server`` is the Starlette app, ``app`` runs it with
uvicorn, ``report`` writes the self-contained HTML file; ``static/`` holds the front end.
"""
