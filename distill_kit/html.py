"""HTML made of untrusted text: escaping, tables, and self-contained pages with Altair charts.

Every piece of text that may come from a model (answers, names, notes) goes through :func:`esc` (or
``html.escape``); chart specs are embedded as JSON with ``<``, ``>`` and ``&`` escaped so no string can close
the ``<script>`` element that carries them.

Pages are shared as files and opened where there is no network, so the Vega/Vega-Lite/Vega-Embed
JavaScript comes from vl-convert's bundle and is inlined once per page. Every chart is also exported as
SVG and PNG (vl-convert) for places without JavaScript.

Two table styles: :func:`table_html` for report pages (records, numbers right-aligned) and
:func:`html_table` for the answer browsers in notebooks (a frame, cells clipped, scrolling).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import html
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from distill_kit.charts import alt

# ---------------------------------------------------------------------------- escaping and cells


def esc(value: Any) -> str:
    """HTML-escape anything shown in a page (model text is untrusted input)."""
    if value is None:
        return ""
    return html.escape(str(value), quote=True)


def script_json(obj: Any) -> str:
    """JSON safe to place inside a ``<script>`` element: ``<``, ``>``, ``&`` become unicode escapes."""
    text = json.dumps(obj, ensure_ascii=False, default=str)
    return (
        text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    )


def fmt_num(value: Any, digits: int = 3) -> str:
    """Format a number for a report table cell; non-numbers are escaped as text, missing values as '–'."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "–" if value != value else f"{value:.{digits}f}"
    return esc(value)


def cell_text(v: Any) -> str:
    """A browser-table cell as plain text: floats to two decimals, booleans as 0/1, missing as ''."""
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if np.isnan(v) else f"{v:.2f}"
    if isinstance(v, bool):
        return str(int(v))
    return str(v)


def pre_block(text: str | None, limit: int, max_height: int = 320) -> str:
    """Escaped, wrapped text, clipped to ``limit`` characters and scrolling past ``max_height`` pixels."""
    t = text or ""
    t = t if len(t) <= limit else t[:limit] + " [...]"
    style = ("white-space:pre-wrap;word-break:normal;overflow-wrap:break-word;text-align:left;font-family:inherit;"
             f"margin:0;max-height:{max_height}px;overflow:auto")
    return f"<pre style='{style}'>{html.escape(t)}</pre>"


def clip(text: str | None, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters, an ellipsis marking the cut."""
    text = text or ""
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


# ---------------------------------------------------------------------------- tables


def html_table(frame: pl.DataFrame, cols: Sequence[str], limit: int, width: int, what: str) -> str:
    """A scrollable table of the first ``limit`` rows, every cell escaped and clipped to ``width`` characters."""
    td = "vertical-align:top;text-align:left;white-space:pre-wrap;word-break:normal;overflow-wrap:break-word"
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in cols)
    body = []
    for row in frame.head(limit).iter_rows(named=True):
        cells = []
        for c in cols:
            t = cell_text(row[c])
            t = t if len(t) <= width else t[: width - 1] + "…"
            cells.append(f"<td style='{td}'>{html.escape(t)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class='dk-static' style='max-height:480px;overflow:auto'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div><p>{min(limit, frame.height)} of {frame.height} {what}</p>")


LONG_CELL = 60
"""Characters above which a text cell is a sentence (a verdict, a note) and gets a readable minimum width:
tables of many numeric columns otherwise squeeze it into a column a few words wide."""


def _cell_class(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "num"
    return "txt long" if isinstance(value, str) and len(value) > LONG_CELL else "txt"


def table_html(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]] | None = None,
               digits: int = 3, caption: str = "") -> str:
    """A report table of records; every cell and header is escaped."""
    if not rows:
        return '<p class="empty">No rows.</p>'
    cols = list(columns) if columns else [(k, k) for k in rows[0].keys()]
    head = "".join(f"<th>{esc(label)}</th>" for _, label in cols)
    body = "".join(
        "<tr>" + "".join(f'<td class="{_cell_class(r.get(k))}">{fmt_num(r.get(k), digits)}</td>' for k, _ in cols) + "</tr>"
        for r in rows
    )
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table class="data">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# ---------------------------------------------------------------------------- pages


@dataclass
class Figure:
    """One chart: shown interactively in the page and exported as SVG/PNG under ``figures/``."""

    name: str  # file stem, e.g. "ice-scores"
    chart: alt.TopLevelMixin
    caption: str = ""


@dataclass
class Section:
    key: str  # anchor id
    title: str
    body: str = ""  # trusted HTML assembled with esc()/table_html()
    figures: list[Figure] = field(default_factory=list)
    ran: bool = True


@dataclass
class Page:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def add(self, section: Section) -> Section:
        self.sections.append(section)
        return section


_TABLE_CSS = """
table.data{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}
table.data th,table.data td{border-bottom:1px solid #e3e7ec;padding:.25rem .6rem;text-align:left !important;vertical-align:top}
table.data td.num{text-align:right !important;font-variant-numeric:tabular-nums}
table.data td.long{min-width:22em}
table.data caption{caption-side:top;text-align:left;color:#555;font-size:.85rem}
"""

_CSS = _TABLE_CSS + """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d232a;background:#fafafa}
header{background:#1d3557;color:#fff;padding:1.4rem 2rem}
header h1{margin:0 0 .3rem 0;font-size:1.6rem}header p{margin:.2rem 0;opacity:.9}
nav{padding:.6rem 2rem;background:#e9eef4;font-size:.9rem}nav a{margin-right:1rem;color:#1d3557}
main{padding:0 2rem 3rem 2rem;max-width:1200px}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:1rem 1.4rem;margin:1.2rem 0;overflow-x:auto}
h2{margin-top:.2rem;color:#1d3557}
.not-run{background:#fff6e0;border-left:4px solid #f0a500;padding:.6rem .8rem}
.chart{margin:.8rem 0}.caption{color:#555;font-size:.85rem;margin:.2rem 0 1rem 0}
.answer{white-space:pre-wrap;font-family:ui-monospace,monospace;font-size:.8rem;background:#f4f6f8;
padding:.4rem .6rem;max-height:12rem;overflow:auto;margin:.2rem 0 .8rem 0}
.static img{max-width:100%}
footer{color:#777;font-size:.8rem;padding:1rem 2rem}
"""

# Runs inside vl-convert's bundle (vegaEmbed in scope): draw every embedded spec into its div.
_EMBED_SNIPPET = """
window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;
function drawAll() {
  document.querySelectorAll('script[type="application/json"][data-vega-target]').forEach(function (el) {
    var target = document.getElementById(el.getAttribute('data-vega-target'));
    var spec = JSON.parse(el.textContent);
    vegaEmbed(target, spec, {renderer: 'svg', actions: {export: true, source: false, compiled: false, editor: false}})
      .then(function () { target.setAttribute('data-rendered', 'true'); })
      .catch(function (err) { target.setAttribute('data-error', String(err)); console.error(err); });
  });
}
if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', drawAll); } else { drawAll(); }
"""


def vl_version() -> str:
    """Vega-Lite version altair targets, in vl-convert's spelling ('5.20')."""
    m = re.match(r"v?(\d+)\.(\d+)", alt.SCHEMA_VERSION)
    return f"{m.group(1)}.{m.group(2)}" if m else "5"


@lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega + Vega-Lite + Vega-Embed and the drawing snippet as one inline script (no network).

    Building the bundle takes vl-convert a few seconds, so it is cached on disk per version.
    """
    import vl_convert as vlc

    from distill_kit.paths import cache_dir

    tag = hashlib.sha256(f"{vlc.__version__}|{vl_version()}|{_EMBED_SNIPPET}".encode()).hexdigest()[:12]
    cached = cache_dir() / "report" / f"vega-bundle-{tag}.js"
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    try:
        js = vlc.javascript_bundle(_EMBED_SNIPPET, vl_version=vl_version())
    except ValueError:  # vl-convert without that exact Vega-Lite version: use its default
        js = vlc.javascript_bundle(_EMBED_SNIPPET)
    js = js.replace("</script", "<\\/script").replace("<!--", "<\\!--")
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(js, encoding="utf-8")
    tmp.replace(cached)
    return js


def chart_spec(chart: alt.TopLevelMixin) -> dict:
    """The Vega-Lite spec with data inlined (no URLs: the page must work offline)."""
    return chart.to_dict()


def chart_svg(chart: alt.TopLevelMixin) -> str:
    """The chart as static SVG (vl-convert), for places without JavaScript."""
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart_spec(chart), vl_version=vl_version())


def export_static(chart: alt.TopLevelMixin, stem: Path, formats: Iterable[str] = ("svg", "png")) -> list[Path]:
    """Write ``stem.svg`` / ``stem.png`` via vl-convert; returns the files written."""
    import vl_convert as vlc

    spec, out = chart_spec(chart), []
    stem.parent.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        if fmt == "svg":
            path.write_text(vlc.vegalite_to_svg(spec, vl_version=vl_version()), encoding="utf-8")
        elif fmt == "png":
            path.write_bytes(vlc.vegalite_to_png(spec, vl_version=vl_version(), scale=2))
        else:
            raise ValueError(f"unknown static format {fmt!r}; use svg or png")
        out.append(path)
    return out


def render_page(page: Page, static_dir: str | None = "figures") -> str:
    """The full page. ``static_dir`` (relative to the page) adds <noscript> images of each figure."""
    nav = "".join(f'<a href="#{esc(s.key)}">{esc(s.title)}</a>' for s in page.sections)
    parts, n = [], 0
    for s in page.sections:
        inner = [f'<h2>{esc(s.title)}</h2>', s.body]
        for fig in s.figures:
            n += 1
            div = f"chart-{n}"
            inner.append(f'<div class="chart" id="{div}" data-figure="{esc(fig.name)}"></div>')
            inner.append(f'<script type="application/json" data-vega-target="{div}">{script_json(chart_spec(fig.chart))}</script>')
            if static_dir:
                src = esc(f"{static_dir}/{fig.name}.svg")
                inner.append(f'<noscript><div class="static"><img src="{src}" alt="{esc(fig.caption or fig.name)}"></div></noscript>')
            if fig.caption:
                inner.append(f'<p class="caption">{esc(fig.caption)}</p>')
        parts.append(f'<section id="{esc(s.key)}" class="{"ran" if s.ran else "missing"}">{"".join(inner)}</section>')
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    script = f"<script>{vega_bundle()}</script>" if n else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(page.title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{esc(page.title)}</h1><p>{esc(page.subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{''.join(parts)}</main>"
        f"<footer>Generated by distill-kit on {esc(now)}. Charts are interactive (hover for values); "
        f"static SVG/PNG copies are in the figures folder.</footer>{script}</body></html>\n"
    )


def write_page(page: Page, path: str | Path, static_formats: Sequence[str] = ("svg", "png")) -> Path:
    """Write the HTML page and its static figures (``figures/<name>.svg|png`` next to it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig_dir = path.parent / "figures"
    for s in page.sections:
        for fig in s.figures:
            if static_formats:
                export_static(fig.chart, fig_dir / fig.name, static_formats)
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(render_page(page, "figures" if static_formats else None), encoding="utf-8")
        tmp.replace(path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)  # a full disk leaves neither half a page nor a stale report.tmp
        if isinstance(exc, OSError) and not exc.filename:
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    return path


def show_in_notebook(page: Page) -> None:
    """Show a page inside a notebook: escaped section bodies and static SVG charts.

    Static SVG (not the interactive embed) so the executed notebook and its nbconvert HTML need
    neither JavaScript nor a network; the interactive page is the written file.
    """
    from IPython.display import HTML, SVG, display

    # the page's table rules; !important because JupyterLab's own rule right-aligns every cell more specifically
    display(HTML(f"<style>{_TABLE_CSS}</style>"))
    for s in page.sections:
        display(HTML(f"<h2>{esc(s.title)}</h2>{s.body}"))
        for fig in s.figures:
            display(SVG(chart_svg(fig.chart)))


