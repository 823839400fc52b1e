"""Notebook pages that open offline: what nbconvert's HTML export keeps of widgets and charts.

Why: an executed notebook exported to HTML the everyday way (``jupyter nbconvert --to html``, or JupyterLab's
File > Save and Export Notebook As > HTML) loads require.js and MathJax from a CDN, and with widget state
saved, the unpkg widget manager; every widget view (charts are widgets in JupyterLab, see ``display``) is
blank without it. :class:`OfflineOutputs` replaces each widget view by the static output that travels with it
(a chart's SVG, a widget's HTML table) or a note, and drops the widget state; the project's template
``distill-offline`` (``jupyter/nbconvert/templates``) drops the CDN scripts. ``jupyter/jupyter_config.py``
makes both the default for nbconvert and JupyterLab's export (``distill-kit lab`` and ``make setup`` put
that folder on Jupyter's config path).
"""

from __future__ import annotations

import re
from typing import Any

from nbconvert.preprocessors import Preprocessor

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ('<p class="dk-widget-note"><em>Interactive widget: not part of this static page '
               '(it needs a running kernel). Open the executed notebook in JupyterLab to use it.</em></p>')
STATIC_MIMES = ("text/html", "image/svg+xml", "image/png", "image/jpeg")
TEMPLATE = "distill-offline"


def static_widgets(nb: Any) -> Any:
    """The notebook without widget state, each widget view replaced by its static output or a note.

    A widget output's own static form is kept (HTML, or a chart's SVG/PNG fallback); a plain-text repr
    that only names the widget (``JupyterChart(...)``) gives way to the note saying where the widget lives.
    """
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data") if out.get("output_type") in ("display_data", "execute_result") else None
            if not data or WIDGET_MIME not in data:
                continue
            data.pop(WIDGET_MIME)
            plain = str(data.get("text/plain", ""))
            if any(m in data for m in STATIC_MIMES):
                if re.match(r"^[A-Za-z]+\(", plain):
                    data.pop("text/plain", None)
            elif not plain or re.match(r"^[A-Za-z]+\(", plain):
                data.pop("text/plain", None)
                data["text/html"] = WIDGET_NOTE
    return nb


class OfflineOutputs(Preprocessor):
    """nbconvert preprocessor: :func:`static_widgets` on the notebook being exported (after ``--execute``)."""

    def preprocess(self, nb: Any, resources: dict) -> tuple[Any, dict]:
        return static_widgets(nb), resources
