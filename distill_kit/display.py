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
from typing import Any, Callable

OFFLINE_RENDERER = "jupyter"
OFFLINE_WITH_STATIC = "distill_kit_offline"  # OFFLINE_RENDERER plus a static SVG in the same output
BATCH_ROLE = "svg"  # the role of pipeline.batch_kernel_setup's import hook


def in_kernel() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel attached), not in scripts or tests."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def batch_kernel() -> bool:
    """True in a pipeline batch kernel: its SVG import hook is waiting, or Altair already renders SVG."""
    if waiting(BATCH_ROLE):
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
    alt.renderers.enable("svg")
    static = alt.renderers.get()
    alt.renderers.enable(OFFLINE_RENDERER, offline=True)
    interactive = alt.renderers.get()

    def with_static(spec: dict, **metadata: Any) -> Any:
        """The JupyterChart widget, and its SVG in the same output: JupyterLab shows the widget, an
        exported page (which keeps no widget) the SVG (``nbexport``)."""
        shown = interactive(spec, **metadata)
        bundle, meta = shown if isinstance(shown, tuple) else (shown, {})
        bundle = dict(bundle)
        try:
            drawn = static(spec)
            bundle.update({k: v for k, v in (drawn[0] if isinstance(drawn, tuple) else drawn).items()
                           if k.startswith("image/")})
        except Exception:  # noqa: BLE001, S110 - the fallback is for exports; the widget is the chart
            pass
        return bundle, meta

    alt.renderers.register(OFFLINE_WITH_STATIC, with_static)
    alt.renderers.enable(OFFLINE_WITH_STATIC)
    return True


def setup_kernel() -> None:
    """In an interactive kernel, make Altair charts render offline as soon as Altair is imported."""
    if not in_kernel():
        return
    install_after_import("altair", enable_offline_charts, role="offline", yields_to=BATCH_ROLE)


class AfterImport:
    """Meta-path finder that runs ``callback(module)`` right after module ``name`` is executed, then removes
    itself. Used for Altair, which takes seconds to import (chart-less notebooks never pay for it).

    It stays in place until the module is actually executed: libraries probe with
    ``importlib.util.find_spec("altair")`` long before anything imports it (e.g. polars' plotting check),
    and a hook that removed itself on the first lookup would miss the real import. ``role`` names the
    hook (``"svg"``: the pipeline's batch kernels; ``"offline"``: interactive kernels); a hook with
    ``yields_to`` steps aside while a hook of that role is waiting."""

    def __init__(self, name: str, callback: Callable[[Any], None], role: str, yields_to: str | None = None):
        self.name, self.callback, self.role, self.yields_to = name, callback, role, yields_to

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != self.name or (self.yields_to and waiting(self.yields_to)):
            return None
        for finder in sys.meta_path:
            if isinstance(finder, AfterImport) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _AfterImportLoader(spec.loader, self)
                return spec
        return None


def waiting(role: str) -> bool:
    """True while an :class:`AfterImport` hook of ``role`` waits for its module."""
    return any(isinstance(f, AfterImport) and f.role == role for f in sys.meta_path)


def install_after_import(name: str, callback: Callable[[Any], None], role: str, yields_to: str | None = None) -> None:
    """Run ``callback`` on module ``name`` now if it is imported, else right after its import (once)."""
    if name in sys.modules:
        callback(sys.modules[name])
    elif not waiting(role):
        sys.meta_path.insert(0, AfterImport(name, callback, role, yields_to))


class _AfterImportLoader:
    def __init__(self, inner: Any, hook: AfterImport):
        self.inner, self.hook = inner, hook

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = self.inner  # altair finds its own resources through its real loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.inner
        self.inner.exec_module(module)
        sys.meta_path[:] = [f for f in sys.meta_path if not (isinstance(f, AfterImport) and f.role == self.hook.role)]
        self.hook.callback(module)

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
