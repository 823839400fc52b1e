"""How notebooks show charts and widgets: interactive and offline in JupyterLab, static in batch runs.

Altair's default renderer loads Vega from a CDN, which fails on a machine without network (every chart shows
"Error loading script"). JupyterLab's own Vega MIME renderer cannot take over either: JupyterLab 4 bundles
Vega-Lite 5 (``application/vnd.vegalite.v5+json``) while Altair 6 emits Vega-Lite 6 specs. The supported
offline path is Altair's ``jupyter`` renderer with ``offline=True``: each chart is an anywidget
(``JupyterChart``) whose JavaScript is the Vega/Vega-Lite/vega-embed bundle shipped inside vl-convert, so
nothing is fetched and tooltips, hover and zoom work as in the report.

:func:`setup_kernel` runs when ``distill_kit`` is imported (every notebook imports it), so this is the one
place the choice is made. It acts only in an interactive Jupyter kernel and never in the pipeline's batch
kernels, which switch Altair to static SVG (``pipeline.batch_kernel_setup``) so executed notebooks and their
HTML open offline without JavaScript. Like that switch it waits for Altair's own import (Altair takes seconds
to import; chart-less notebooks never pay for it).
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

OFFLINE_RENDERER = "jupyter"
_BATCH_HOOK = "_AltairSvgHook"  # pipeline.batch_kernel_setup's import hook (kept by class name: no import cycle)


def in_kernel() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel attached), not in scripts or tests."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def batch_kernel() -> bool:
    """True in a pipeline batch kernel: its SVG import hook is waiting, or Altair already renders SVG."""
    if any(type(f).__name__ == _BATCH_HOOK for f in sys.meta_path):
        return True
    alt = sys.modules.get("altair")
    return alt is not None and getattr(alt.renderers, "active", "") == "svg"


def enable_offline_charts(alt: Any) -> bool:
    """Switch Altair to the offline ``jupyter`` renderer unless this is a batch kernel or the user already
    chose a renderer. Returns whether it switched."""
    if batch_kernel() or alt.renderers.active != "default":
        return False
    if importlib.util.find_spec("anywidget") is None:  # without anywidget the only offline choice is static
        alt.renderers.enable("svg")
        return True
    alt.renderers.enable(OFFLINE_RENDERER, offline=True)
    return True


def setup_kernel() -> None:
    """In an interactive kernel, make Altair charts render offline as soon as Altair is imported."""
    if not in_kernel():
        return
    if "altair" in sys.modules:
        enable_offline_charts(sys.modules["altair"])
    elif not any(isinstance(f, _OfflineChartsHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _OfflineChartsHook())


class _OfflineChartsHook:
    """Meta-path finder that wraps Altair's loader so the offline renderer is enabled right after import.

    In a batch kernel it steps aside (returns None) and lets the SVG hook handle the import."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "altair" or any(type(f).__name__ == _BATCH_HOOK for f in sys.meta_path):
            return None
        for finder in sys.meta_path:
            if isinstance(finder, _OfflineChartsHook) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _OfflineLoader(spec.loader)
                return spec
        return None


class _OfflineLoader:
    def __init__(self, inner: Any):
        self.inner = inner

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = self.inner  # altair finds its own resources through its real loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        self.inner.exec_module(module)
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _OfflineChartsHook)]
        enable_offline_charts(module)

    def __getattr__(self, item: str) -> Any:
        return getattr(self.inner, item)


class WithStatic:
    """A widget that also carries a static HTML rendering.

    In JupyterLab the widget view wins (JupyterLab ranks widget views above HTML); the HTML is what an
    exported page or a viewer without a kernel shows. In a batch kernel only the static HTML is emitted, so
    executed notebooks hold no widget state and their HTML needs no widget JavaScript."""

    def __init__(self, widget: Any, static_html: str, label: str = "widget") -> None:
        self.widget, self.static_html, self.label = widget, static_html, label

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if batch_kernel() or not in_kernel():
            return {"text/html": self.static_html, "text/plain": f"<{self.label}: static table>"}
        bundle = dict(self.widget._repr_mimebundle_())
        bundle["text/html"] = self.static_html
        return bundle


def show(widget: Any, static_html: str, label: str = "widget") -> None:
    """Display ``widget`` in a live kernel (with its static HTML alongside), only the HTML in batch runs."""
    from IPython.display import display

    display(WithStatic(widget, static_html, label))
