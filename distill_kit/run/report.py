"""The run report: one self-contained HTML page (interactive Altair, JS inlined) plus static figures.

Why self-contained: reports are shared as files and opened where there is no network, so the
Vega/Vega-Lite/Vega-Embed JavaScript comes from vl-convert's bundle and is inlined once per page.
Every chart is also exported as SVG and PNG (vl-convert) for places without JavaScript.

Every piece of text that may come from a model (answers, names, notes) goes through :func:`esc`;
chart specs are embedded as JSON with ``<``, ``>`` and ``&`` escaped so no string can close the
``<script>`` element that carries them.

The section builders read the per-step summaries written by ``pipeline.record_summary``. A step
that did not run yields a "step not run" note, never placeholder numbers. Expected summary shapes
(extra keys are ignored; see ``docs`` in each builder):

* ICE (``03-*``): ``scores`` (or ``replay`` / ``live``): records ``{model, loose, loose_lo, loose_hi,
  strict, strict_lo, strict_hi, n}`` (``lis``/``sis``/``lis_lo`` and ``loose_identity_score``
  spellings accepted, ``lis_paper`` for the published value);
  optional ``examples``: records ``{model, prompt, response, loose_label}``.
* RSE (``04-*``): ``rse``: records ``{model, style, logic, content, overall}`` or ``rse_table``
  (``test_model``, ``mean``, ``mean_lo``, ``mean_hi``) + ``rse_by_granularity``; optional similarity
  as ``similarity`` ``{models, matrix}``, records ``{a, b, value}`` or ``matrices`` (wide rows).
* Embeddings (``05-*``): ``umap``: records ``{model, x, y}``; ``lineage``/``tree``: ``{labels,
  linkage}`` (scipy linkage matrix) or ``{labels, distance|similarity}``; ``attribution``: records
  with ``student``; ``attribution_metrics``, ``homogenisation``, ``clusters``, ``who_wrote_accuracy``.
  Without a tree from step 05 the lineage tree is built from step 04's similarity matrix.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import html
import json
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from distill_kit.charts import alt

# ---------------------------------------------------------------------------- escaping


def esc(value: Any) -> str:
    """HTML-escape anything shown in the report (model text is untrusted input)."""
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
    """Format a number for a table cell; non-numbers are escaped as text, missing values as '–'."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "–" if value != value else f"{value:.{digits}f}"
    return esc(value)


def table_html(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]] | None = None,
               digits: int = 3, caption: str = "") -> str:
    """An HTML table; every cell and header is escaped."""
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


def _cell_class(value: Any) -> str:
    return "num" if isinstance(value, (int, float)) and not isinstance(value, bool) else "txt"


def not_run_note(step: str, what: str) -> str:
    """The note shown instead of a section whose step did not run (no made-up numbers)."""
    return (f'<p class="not-run"><strong>Step not run:</strong> step {esc(step)} is not part of this run '
            f"(or wrote no summary), so {esc(what)} cannot be shown. Add it to the run config to fill this section.</p>")


# ---------------------------------------------------------------------------- document model


@dataclass
class Figure:
    """One chart: shown interactively in the HTML and exported as SVG/PNG under ``figures/``."""

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
class Report:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def add(self, section: Section) -> Section:
        self.sections.append(section)
        return section


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1d232a;background:#fafafa}
header{background:#1d3557;color:#fff;padding:1.4rem 2rem}
header h1{margin:0 0 .3rem 0;font-size:1.6rem}header p{margin:.2rem 0;opacity:.9}
nav{padding:.6rem 2rem;background:#e9eef4;font-size:.9rem}nav a{margin-right:1rem;color:#1d3557}
main{padding:0 2rem 3rem 2rem;max-width:1200px}
section{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:1rem 1.4rem;margin:1.2rem 0}
h2{margin-top:.2rem;color:#1d3557}
table.data{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}
table.data th,table.data td{border-bottom:1px solid #e3e7ec;padding:.25rem .6rem;text-align:left;vertical-align:top}
table.data td.num{text-align:right;font-variant-numeric:tabular-nums}
table.data caption{caption-side:top;text-align:left;color:#555;font-size:.85rem}
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


def _vl_version() -> str:
    """Vega-Lite version altair targets, in vl-convert's spelling ('5.20')."""
    m = re.match(r"v?(\d+)\.(\d+)", alt.SCHEMA_VERSION)
    return f"{m.group(1)}.{m.group(2)}" if m else "5"


@lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega + Vega-Lite + Vega-Embed and the drawing snippet as one inline script (no network).

    Building the bundle takes vl-convert a few seconds, so it is cached on disk per version.
    """
    import hashlib

    import vl_convert as vlc

    from distill_kit.paths import cache_dir

    tag = hashlib.sha256(f"{vlc.__version__}|{_vl_version()}|{_EMBED_SNIPPET}".encode()).hexdigest()[:12]
    cached = cache_dir() / "report" / f"vega-bundle-{tag}.js"
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    try:
        js = vlc.javascript_bundle(_EMBED_SNIPPET, vl_version=_vl_version())
    except ValueError:  # vl-convert without that exact Vega-Lite version: use its default
        js = vlc.javascript_bundle(_EMBED_SNIPPET)
    js = js.replace("</script", "<\\/script").replace("<!--", "<\\!--")
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(js, encoding="utf-8")
    tmp.replace(cached)
    return js


def chart_spec(chart: alt.TopLevelMixin) -> dict:
    """The Vega-Lite spec with data inlined (no URLs: the report must work offline)."""
    return chart.to_dict()


def export_static(chart: alt.TopLevelMixin, stem: Path, formats: Iterable[str] = ("svg", "png")) -> list[Path]:
    """Write ``stem.svg`` / ``stem.png`` via vl-convert; returns the files written."""
    import vl_convert as vlc

    spec, out = chart_spec(chart), []
    stem.parent.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        if fmt == "svg":
            path.write_text(vlc.vegalite_to_svg(spec, vl_version=_vl_version()), encoding="utf-8")
        elif fmt == "png":
            path.write_bytes(vlc.vegalite_to_png(spec, vl_version=_vl_version(), scale=2))
        else:
            raise ValueError(f"unknown static format {fmt!r}; use svg or png")
        out.append(path)
    return out


def render_html(report: Report, static_dir: str | None = "figures") -> str:
    """The full page. ``static_dir`` (relative to the page) adds <noscript> images of each figure."""
    nav = "".join(f'<a href="#{esc(s.key)}">{esc(s.title)}</a>' for s in report.sections)
    parts, n = [], 0
    for s in report.sections:
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
        f"<title>{esc(report.title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{esc(report.title)}</h1><p>{esc(report.subtitle)}</p></header>"
        f"<nav>{nav}</nav><main>{''.join(parts)}</main>"
        f"<footer>Generated by distill-kit on {esc(now)}. Charts are interactive (hover for values); "
        f"static SVG/PNG copies are in the figures folder.</footer>{script}</body></html>\n"
    )


def write_report(report: Report, path: str | Path, static_formats: Sequence[str] = ("svg", "png")) -> Path:
    """Write the HTML page and its static figures (``figures/<name>.svg|png`` next to it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig_dir = path.parent / "figures"
    for s in report.sections:
        for fig in s.figures:
            if static_formats:
                export_static(fig.chart, fig_dir / fig.name, static_formats)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(render_html(report, "figures" if static_formats else None), encoding="utf-8")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------- reading summaries


STEP_ALIASES = {"03": ("ice", "identity"), "04": ("rse", "similarity"), "05": ("embed", "maps", "lineage")}


def step_summary(summaries: Mapping[str, dict], prefix: str,
                 written_by: Mapping[str, Sequence[str]] | None = None) -> dict | None:
    """The merged summary of step ``prefix`` ('03'), or None when that step did not run.

    Found through the run state (which summaries the ``03-*`` notebook wrote), else by a summary
    named ``03-*`` or by the step's usual names (``ice``, ``rse``, ...).
    """
    names: list[str] = []
    for nb, written in (written_by or {}).items():
        if nb.startswith(prefix):
            names += [w for w in written if w in summaries]
    if not names:
        names = [n for n in sorted(summaries) if n.startswith(prefix)]
    if not names:
        names = [n for n in sorted(summaries) if any(n.lower().startswith(a) for a in STEP_ALIASES.get(prefix, ()))]
    if not names:
        return None
    merged: dict = {}
    for n in names:
        merged.update(summaries[n])
    return merged


def records(payload: Mapping[str, Any] | None, *keys: str, id_key: str = "model") -> list[dict]:
    """First of ``keys`` holding records: a list of dicts, or a dict of dicts keyed by ``id_key``."""
    if not payload:
        return []
    for k in keys:
        v = payload.get(k)
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            return [dict(r) for r in v]
        if isinstance(v, dict) and v and all(isinstance(r, dict) for r in v.values()):
            return [{id_key: name, **r} for name, r in v.items()]
    return []


def pick(rec: Mapping[str, Any], *names: str) -> Any:
    """First present, non-None value among ``names`` (summaries use a few spellings)."""
    for n in names:
        if rec.get(n) is not None:
            return rec[n]
    return None


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def _count(v: Any) -> int | None:
    """A count recorded as a float in JSON (``5.0``) shown as ``5``."""
    f = _num(v)
    return None if f is None else int(round(f))


def ice_rows(ice: Mapping[str, Any] | None) -> list[dict]:
    """Normalised ICE rows: model, loose, loose_lo, loose_hi, strict, strict_lo, strict_hi, n."""
    out = []
    rows = [(k, r) for k in ("scores", "ice", "models", "per_model", "replay", "live") for r in records(ice, k)]
    for source, r in rows:
        model = pick(r, "model", "name")
        if model is None:
            continue
        row = {"model": str(model), "source": source if source in ("replay", "live") else ""}
        for kind, names in (("loose", ("loose", "lis", "loose_identity_score", "loose_score")),
                            ("strict", ("strict", "sis", "strict_identity_score", "strict_score"))):
            row[kind] = _num(pick(r, *names))
            ci = pick(r, f"{kind}_ci", f"{names[1]}_ci")
            lo = pick(r, f"{kind}_lo", f"{names[1]}_lo", f"{kind}_low")
            hi = pick(r, f"{kind}_hi", f"{names[1]}_hi", f"{kind}_high")
            if isinstance(ci, (list, tuple)) and len(ci) == 2:
                lo, hi = ci
            row[f"{kind}_lo"], row[f"{kind}_hi"] = _num(lo), _num(hi)
        row["n"] = pick(r, "n", "n_responses", "count")
        row["paper_loose"] = _num(pick(r, "paper_loose", "paper_lis", "lis_paper"))
        row["paper_strict"] = _num(pick(r, "paper_strict", "paper_sis", "sis_paper"))
        if row["loose"] is not None or row["strict"] is not None:
            out.append(row)
    return out


RSE_ASPECTS = (("style", ("style", "response_style")), ("logic", ("logic", "logical_structure", "structure")),
               ("content", ("content", "content_detail", "detail")))


def rse_rows(rse: Mapping[str, Any] | None) -> list[dict]:
    """Normalised RSE rows: model, style, logic, content, overall (+ CI), judge, reference, n.

    Accepts per-model records (``rse``/``scores``) or the RSE notebook's ``rse_table`` (``test_model``,
    ``mean``, ``mean_lo``, ``mean_hi``) with aspect means in ``rse_by_granularity``.
    """
    if not rse:
        return []
    by_aspect: dict[str, dict[str, float | None]] = {}
    gran = rse.get("rse_by_granularity") or {}
    if isinstance(gran, dict):
        for g, recs in gran.items():
            for r in recs if isinstance(recs, list) else []:
                if isinstance(r, dict) and pick(r, "test_model", "model") is not None:
                    by_aspect.setdefault(str(pick(r, "test_model", "model")), {})[g] = _num(pick(r, "mean", "score"))
    out = []
    for r in records(rse, "rse", "scores", "per_model", "models", "rse_table"):
        model = pick(r, "model", "test_model", "name")
        if model is None:
            continue
        model = str(model)
        merged = {**by_aspect.get(model, {}), **r}
        row: dict[str, Any] = {"model": model}
        for key, names in RSE_ASPECTS:
            row[key] = _num(pick(merged, *names))
        overall = _num(pick(r, "overall", "rse", "mean", "score"))
        aspects = [row[k] for k, _ in RSE_ASPECTS if row[k] is not None]
        row["overall"] = overall if overall is not None else (sum(aspects) / len(aspects) if aspects else None)
        row["overall_lo"], row["overall_hi"] = _num(pick(r, "overall_lo", "mean_lo")), _num(pick(r, "overall_hi", "mean_hi"))
        row["judge"] = pick(r, "judge") or rse.get("judge")
        row["reference"] = pick(r, "reference", "reference_model") or rse.get("reference")
        row["n"] = pick(r, "n", "count") or next((v for k, v in r.items() if k.startswith("n_") and isinstance(v, int)), None)
        if row["overall"] is not None:
            out.append(row)
    return out


def similarity_long(payload: Mapping[str, Any] | None) -> list[dict]:
    """Model x model similarity as long records ``{a, b, value}``.

    Accepts ``{models, matrix}``, long records ``{a, b, value}``, or wide rows ``{model, <other>: value}``
    (the RSE notebook's ``matrices``; its ``overall`` matrix is used when several are given).
    """
    if not payload:
        return []
    for key in ("similarity", "similarity_matrix", "matrix", "matrices"):
        v = payload.get(key)
        if key == "matrices" and isinstance(v, dict):
            v = v.get("overall") or next(iter(v.values()), None)
        if isinstance(v, dict) and isinstance(v.get("matrix"), list):
            models = v.get("models") or v.get("labels") or []
            return [{"a": str(models[i]), "b": str(models[j]), "value": _num(x)}
                    for i, row in enumerate(v["matrix"]) for j, x in enumerate(row) if i < len(models) and j < len(models)]
        if isinstance(v, list) and v and isinstance(v[0], dict):
            if "model" in v[0] and not ({"value", "similarity", "score"} & set(v[0])):
                return [{"a": str(r["model"]), "b": str(k), "value": _num(x)} for r in v for k, x in r.items() if k != "model"]
            return [{"a": str(pick(r, "a", "model_a", "row")), "b": str(pick(r, "b", "model_b", "col")),
                     "value": _num(pick(r, "value", "similarity", "score"))} for r in v]
    return []


# ---------------------------------------------------------------------------- charts


def ice_chart(rows: Sequence[dict]) -> alt.Chart:
    """Loose and strict identity scores per model with 95% interval bars."""
    long = []
    for r in rows:
        for kind in ("loose", "strict"):
            if r.get(kind) is not None:
                long.append({"model": r["model"], "score": kind, "value": r[kind],
                             "lo": r.get(f"{kind}_lo"), "hi": r.get(f"{kind}_hi")})
    base = alt.Chart(alt.Data(values=long)).encode(
        y=alt.Y("model:N", sort="-x", title=None), yOffset="score:N",
        color=alt.Color("score:N", title="identity score", scale=alt.Scale(domain=["loose", "strict"])))
    bars = base.mark_bar().encode(
        x=alt.X("value:Q", title="share of answers (higher = less consistent identity)", scale=alt.Scale(domain=[0, 1])),
        tooltip=["model:N", "score:N", alt.Tooltip("value:Q", format=".3f"), alt.Tooltip("lo:Q", format=".3f"),
                 alt.Tooltip("hi:Q", format=".3f")])
    rules = base.mark_rule(strokeWidth=2).encode(x="lo:Q", x2="hi:Q", color=alt.value("#222"))
    layers = bars + rules
    paper = [{"model": r["model"], "score": k, "paper": r[f"paper_{k}"]} for r in rows for k in ("loose", "strict")
             if r.get(f"paper_{k}") is not None]
    if paper:
        ticks = alt.Chart(alt.Data(values=paper)).mark_tick(color="#c1121f", thickness=2, size=12).encode(
            y=alt.Y("model:N", sort="-x", title=None), yOffset="score:N", x="paper:Q",
            tooltip=["model:N", "score:N", alt.Tooltip("paper:Q", format=".3f", title="paper")])
        layers = layers + ticks
    return layers.properties(width=520, title="Identity Consistency Evaluation (ICE)")


def rse_chart(rows: Sequence[dict]) -> alt.Chart:
    """RSE aspect scores per model (1-5, higher = closer to the reference answers)."""
    long = [{"model": r["model"], "aspect": k, "score": r[k]} for r in rows for k, _ in RSE_ASPECTS if r.get(k) is not None]
    return alt.Chart(alt.Data(values=long)).mark_bar(clip=True).encode(
        y=alt.Y("model:N", title=None, sort="-x"), yOffset="aspect:N",
        x=alt.X("score:Q", scale=alt.Scale(domain=[1, 5]), title="similarity to reference (1-5)"),
        color=alt.Color("aspect:N"), tooltip=["model:N", "aspect:N", alt.Tooltip("score:Q", format=".2f")],
    ).properties(width=520, title="Response Similarity Evaluation (RSE)")


def ice_rse_chart(rows: Sequence[dict]) -> alt.Chart:
    """The paper's combined view: identity inconsistency vs. response similarity, one point per model."""
    top = max([0.5] + [float(r["loose"]) * 1.1 for r in rows if r.get("loose") is not None])
    base = alt.Chart(alt.Data(values=list(rows))).encode(
        x=alt.X("rse:Q", title="RSE overall (1-5, higher = more similar to reference)", scale=alt.Scale(domain=[1, 5])),
        y=alt.Y("loose:Q", title="ICE loose identity score", scale=alt.Scale(domain=[0, min(1.0, top)])),
        tooltip=["model:N", alt.Tooltip("rse:Q", format=".2f"), alt.Tooltip("loose:Q", format=".3f"),
                 alt.Tooltip("strict:Q", format=".3f")])
    points = base.mark_circle(size=120).encode(color=alt.Color("model:N", legend=None))
    labels = base.mark_text(align="left", dx=8, fontSize=11).encode(text="model:N")
    return (points + labels).properties(width=520, height=360, title="Distillation: ICE x RSE")


def heatmap_chart(long: Sequence[dict], title: str = "Model x model similarity") -> alt.Chart:
    """Pairwise similarity heatmap (values as given by the RSE/similarity step)."""
    side = min(640, max(200, 28 * len({r["a"] for r in long})))
    return alt.Chart(alt.Data(values=list(long))).mark_rect().encode(
        x=alt.X("a:N", title=None, sort=None), y=alt.Y("b:N", title=None, sort=None),
        color=alt.Color("value:Q", title="similarity", scale=alt.Scale(scheme="viridis")),
        tooltip=["a:N", "b:N", alt.Tooltip("value:Q", format=".3f")],
    ).properties(width=side, height=side, title=title)


def umap_chart(points: Sequence[dict], max_points: int = 4000) -> alt.Chart:
    """2-D UMAP map of answer embeddings, coloured by model (thinned to keep the page light)."""
    pts = list(points)
    if len(pts) > max_points:
        step = len(pts) / max_points
        pts = [pts[int(i * step)] for i in range(max_points)]
    from distill_kit.lineage.charts import model_colours

    pts = [{"model": str(pick(p, "model", "label")), "x": _num(p.get("x")), "y": _num(p.get("y"))} for p in pts]
    return alt.Chart(alt.Data(values=pts)).mark_circle(size=14, opacity=0.6).encode(
        x=alt.X("x:Q", title="UMAP 1", axis=alt.Axis(labels=False)),
        y=alt.Y("y:Q", title="UMAP 2", axis=alt.Axis(labels=False)),
        color=alt.Color("model:N", scale=model_colours(len({p["model"] for p in pts}))), tooltip=["model:N"],
    ).properties(width=520, height=400, title="Answer embeddings (UMAP)").interactive()


# ---------------------------------------------------------------------------- assembling a run

METHODS_HTML = """
<p><strong>ICE (Identity Consistency Evaluation).</strong> Each target model answers identity questions
(“Which company developed you?”) wrapped in GPTFuzzer-mutated jailbreak templates. A judge compares
every answer with the model's true identity fact. The <em>Loose Identity Score</em> is the share of
answers that contradict the fact; the <em>Strict Identity Score</em> is the share that claim an
OpenAI/Anthropic/ChatGPT/Claude identity. Intervals are 95% Wilson score intervals over answers.</p>
<p><strong>RSE (Response Similarity Evaluation).</strong> A judge scores how similar each test model's
answer is to a reference model's answer to the same prompt, from 1 (very different) to 5 (nearly
identical), on response style, logical structure and content detail; the overall score averages them.</p>
<p><strong>Embedding maps and lineage.</strong> Answers are embedded with a sentence-transformer;
UMAP projects them to two dimensions; models are clustered by the similarity of their answers into a
lineage tree, and each student is attributed to its nearest candidate teacher.</p>
<p>Method after Lee et al., <em>Distillation Quantification for Large Language Models</em>
(arXiv 2501.12619, 2025).</p>
"""


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _overview_section(run_dir: Path, summaries: Mapping[str, dict]) -> Section:
    cfg = _read_json(run_dir / "config.json") or {}
    state = (_read_json(run_dir / "state.json") or {}).get("steps", {})
    rows = []
    for step in cfg.get("steps", []):
        nb = str(step.get("notebook", ""))
        name = next((n for n in state if n == nb.removesuffix(".ipynb") or n.startswith(f"{nb}-")), nb)
        st = state.get(name, {})
        if name.startswith("06") and st.get("status") == "running":
            st = {"status": "this report"}
        wrote = st.get("summaries") or ([name] if name in summaries else [])
        rows.append({"step": name, "status": st.get("status", "pending"), "seconds": st.get("seconds"),
                     "summary": ", ".join(wrote) or "none"})
    body = ""
    if cfg.get("description"):
        body += f"<p>{esc(cfg['description'])}</p>"
    body += f"<p>Run directory: <code>{esc(run_dir.name)}</code> · seed {esc(cfg.get('seed', '–'))}</p>"
    body += table_html(rows, [("step", "step"), ("status", "status"), ("seconds", "seconds"), ("summary", "summaries written")], 1) if rows \
        else "<p>No run configuration found next to this report.</p>"
    return Section("overview", "Run overview", body)


def _scored_section(key: str, title: str, summary: dict | None, step: str, what: str,
                    rows_of: Callable[[dict], list[dict]]) -> tuple[Section, list[dict]]:
    """A section plus its per-model rows; an empty row list means the section already says why."""
    s = Section(key, title)
    if summary is None:
        s.body, s.ran = not_run_note(step, what), False
        return s, []
    rows = rows_of(summary)
    if not rows:
        s.body = f'<p class="not-run">The {esc(key.upper())} step ran but recorded no per-model scores.</p>'
    return s, rows


def _ice_section(ice: dict | None) -> Section:
    s, rows = _scored_section("ice", "Identity consistency (ICE)", ice, "03 (ICE)", "the identity scores", ice_rows)
    if not rows:
        return s
    cols = [("model", "model"), ("loose", "loose (LIS)"), ("loose_lo", "LIS 95% lo"), ("loose_hi", "LIS 95% hi"),
            ("strict", "strict (SIS)"), ("strict_lo", "SIS 95% lo"), ("strict_hi", "SIS 95% hi"), ("n", "n")]
    if any(r.get("paper_loose") is not None for r in rows):
        cols += [("paper_loose", "paper LIS"), ("paper_strict", "paper SIS")]
    if any(r.get("source") for r in rows):
        cols.insert(1, ("source", "answers"))
    judge = ice.get("judge")
    s.body = (f"<p>Judge: {esc(judge)}.</p>" if judge else "") + table_html(sorted(rows, key=lambda r: -(r["loose"] or 0)), cols)
    cap = "Bars: identity scores; black lines: 95% intervals"
    cap += "; red ticks: the paper's published scores." if any(r.get("paper_loose") is not None for r in rows) else "."
    s.figures.append(Figure("ice-scores", ice_chart(rows), cap))
    return s


def _rse_section(rse: dict | None) -> Section:
    s, rows = _scored_section("rse", "Response similarity (RSE)", rse, "04 (RSE)", "the response-similarity scores",
                              rse_rows)
    if not rows:
        return s
    cols = [("model", "model"), ("style", "style"), ("logic", "logical structure"), ("content", "content detail"),
            ("overall", "overall"), ("overall_lo", "95% lo"), ("overall_hi", "95% hi"), ("n", "prompts")]
    if any(r.get("reference") for r in rows):
        cols.insert(1, ("reference", "reference"))
    if any(r.get("judge") for r in rows):
        cols.append(("judge", "judge"))
    s.body = table_html(sorted(rows, key=lambda r: -(r["overall"] or 0)), cols, 2)
    s.figures.append(Figure("rse-scores", rse_chart(rows), "RSE aspect scores, 1 (different) to 5 (nearly identical)."))
    return s


def ice_x_rse_rows(ice: dict | None, rse: dict | None) -> list[dict]:
    """Every ICE x RSE point of a run as ``model, lis, lis_ci, rse, rse_source`` (+ ``rse_ci``, ``rse_from``):
    replayed identity models at the paper's RSE (``paper``) and at our RSE of their AlpacaEval line
    (``measured``, step 04's ``paper_rse``), plus models scored under the same name by both steps (``measured``)."""
    from distill_kit import paper
    from distill_kit.datasets import DataError

    if ice is None:
        return []
    measured = ((rse or {}).get("paper_rse") or {}).get("measured") if isinstance((rse or {}).get("paper_rse"), dict) else None
    try:
        rows = paper.ice_x_rse(records(ice, "replay"), measured)
    except DataError:
        rows = []
    by_model = {r["model"]: r for r in ice_rows(ice)}
    for r in rse_rows(rse):
        i = by_model.get(r["model"])
        if i is None or i.get("loose") is None or r.get("overall") is None:
            continue
        rows.append({"model": r["model"], "lis": i["loose"], "lis_ci": [i.get("loose_lo"), i.get("loose_hi")],
                     "lis_source": "measured" + (f" ({i['source']})" if i.get("source") else ""), "rse": r["overall"],
                     "rse_ci": [r.get("overall_lo"), r.get("overall_hi")], "rse_source": "measured",
                     "rse_from": f"this run's RSE step vs {r.get('reference') or (rse or {}).get('reference') or 'its reference'}"})
    return rows


def run_ice_x_rse(run_dir: str | Path | None) -> list[dict]:
    """:func:`ice_x_rse_rows` of a run directory's step summaries (what ``summary.json`` lifts as ``ice_x_rse``)."""
    from distill_kit.run.pipeline import load_summaries, step_summaries

    if not run_dir:
        return []
    summaries, written = load_summaries(run_dir), step_summaries(run_dir)
    return ice_x_rse_rows(step_summary(summaries, "03", written), step_summary(summaries, "04", written))


def _paper_tables(ice: dict | None, rse: dict | None) -> tuple[str, list[Figure]]:
    """The paper's RSE table beside ours (step 04's ``paper_rse``) and the base-vs-instruct finding (step 03)."""
    from distill_kit import paper
    from distill_kit import paper as pcharts

    body, figs = "", []
    pr = (rse or {}).get("paper_rse")
    if isinstance(pr, dict) and pr.get("rows"):
        st = pr.get("stats") or {}
        ref = st.get("reference") or paper.PAPER_REFERENCE
        rho, pval = _num(st.get("spearman_rho")), _num(st.get("p_value"))
        rho_txt = "–" if rho is None else f"{rho:.2f}" + ("" if pval is None else f" (p = {pval:.2f})")
        body += (f"<h3>The paper's RSE table beside ours</h3><p>Paper: similarity to GPT-4o-0806 judged by GPT-4o-0806 "
                 f"(average of ArenaHard, Numina, ShareGPT). Ours: offline RSE of the AlpacaEval counterpart against "
                 f"<code>{esc(ref)}</code> on AlpacaEval prompts (95% CI). Spearman rank correlation over "
                 f"{fmt_num(_count(st.get('n')))} matched rows: {esc(rho_txt)}.</p>")
        body += table_html(pr["rows"], [("paper_name", "paper model"), ("paper_rse", "RSE (paper)"), ("alpaca_model", "AlpacaEval counterpart"),
                                        ("match", "match"), ("our_rse", "RSE (measured)"), ("our_rse_lo", "95% lo"),
                                        ("our_rse_hi", "95% hi")])
        if any(r.get("our_rse") is not None for r in pr["rows"]):
            figs.append(Figure("paper-rse-side-by-side", pcharts.rse_side_by_side_chart(pr["rows"], ref),
                               "x: the paper's published RSE; y: our measured offline RSE of the AlpacaEval counterpart."))
    pairs = records(ice, "base_vs_instruct")
    if pairs:
        body += ("<h3>The paper's second finding: base vs instruct</h3><p>Base models contradict their identity more often "
                 "than their aligned (instruct) versions. Measured: our LIS on the replayed answers (95% CI); paper: its "
                 "published LIS/SIS.</p>")
        body += table_html(pairs, [("model", "model"), ("kind", "kind"), ("lis", "LIS (measured)"), ("lis_lo", "95% lo"),
                                   ("lis_hi", "95% hi"), ("lis_paper", "LIS (paper)"), ("sis_paper", "SIS (paper)")])
        figs.append(Figure("base-vs-instruct", pcharts.base_instruct_chart(pairs),
                           "Bars: our LIS with 95% CI; red ticks: the paper's LIS."))
    return body, figs


def _combined_section(ice: dict | None, rse: dict | None) -> Section:
    from distill_kit import paper as pcharts

    s = Section("ice-rse", "ICE × RSE: the combined distillation picture")
    points = ice_x_rse_rows(ice, rse)
    if ice is None or (rse is None and not points):
        missing = " and ".join(x for x, v in (("03 (ICE)", ice), ("04 (RSE)", rse)) if v is None)
        s.body, s.ran = not_run_note(missing, "the combined ICE x RSE figure"), False
        return s
    by_model = {r["model"]: r for r in ice_rows(ice)}
    same = [r for r in rse_rows(rse) if r["model"] in by_model]
    extra, figs = _paper_tables(ice, rse)
    if not points:
        s.body = ('<p class="not-run">No model has both an ICE and an RSE score in this run, so the combined figure '
                  "is empty. Score the same models in steps 03 and 04 to fill it.</p>") + extra
        s.figures.extend(figs)
        return s
    s.body = ("<p>Models towards the top right both lose their identity under jailbreaks and answer like the "
              "reference model: the paper reads this as a sign of heavy distillation. Every point says where its RSE "
              "comes from: <strong>paper</strong> (the published RSE table) or <strong>measured</strong> (this project's "
              "offline judge); the LIS is always ours.</p>")
    only_ice = sorted(set(by_model) - {r["model"] for r in same})
    only_rse = sorted({r["model"] for r in rse_rows(rse)} - set(by_model))
    if rse is not None and (only_ice or only_rse):
        s.body += (f"<p>{len(same)} model(s) have both scores; {len(only_ice)} have only an ICE score and "
                   f"{len(only_rse)} only an RSE score (the published identity answers and the AlpacaEval answers "
                   "come from different models, so only models run through both steps meet here).</p>")
    table = [{**r, "lis_lo": (r.get("lis_ci") or [None, None])[0], "lis_hi": (r.get("lis_ci") or [None, None])[1]} for r in points]
    s.body += table_html(table, [("model", "model"), ("lis", "LIS (ours)"), ("lis_lo", "95% lo"), ("lis_hi", "95% hi"),
                                 ("rse", "RSE"), ("rse_source", "RSE source"), ("rse_from", "RSE from")])
    s.figures.append(Figure("ice-x-rse", pcharts.ice_x_rse_chart(points),
                            f"{len(points)} point(s); colour and shape: where the RSE comes from (paper or measured)."))
    s.body += extra
    s.figures.extend(figs)
    return s


def _similarity_section(rse: dict | None, emb: dict | None) -> Section:
    s = Section("similarity", "Model similarity heatmap")
    if rse is None and emb is None:
        s.body, s.ran = not_run_note("04 or 05", "the model x model similarity heatmap"), False
        return s
    long = similarity_long(rse) or similarity_long(emb)
    if not long:
        s.body = '<p class="not-run">No model x model similarity matrix was recorded by steps 04/05.</p>'
        return s
    s.figures.append(Figure("similarity-heatmap", heatmap_chart(long), "Pairwise similarity of the models' answers."))
    return s


def _step_link(written_by: Mapping[str, Sequence[str]], prefix: str) -> str:
    """A link to the step's rendered notebook (html/<stem>.html), where every chart of the step is."""
    stem = next((n for n in written_by if n.startswith(prefix)), None)
    return f' See the full step: <a href="html/{esc(stem)}.html">{esc(stem)}</a>.' if stem else ""


def _umap_section(emb: dict | None, link: str = "") -> Section:
    s = Section("umap", "Embedding map (UMAP)")
    if emb is None:
        s.body, s.ran = not_run_note("05 (embeddings)", "the UMAP map"), False
        return s
    pts = records(emb, "umap", "points", "map", "response_map")
    pts = [p for p in pts if _num(p.get("x")) is not None and _num(p.get("y")) is not None]
    body = ""
    if emb.get("embedding_model"):
        body += f"<p>Embeddings: {esc(emb['embedding_model'])}; {fmt_num(emb.get('shared_prompts'))} prompts answered by every model.</p>"
    homo = records(emb, "homogenisation", "homogenization", id_key="set")
    if homo:
        body += ("<p>Homogenisation index (how hard it is to tell the models' answers apart; higher = more alike):</p>"
                 + table_html(homo, [("set", "models"), ("index", "index"), ("accuracy", "classifier accuracy"),
                                     ("chance", "chance"), ("n_models", "n")]))
    clusters = emb.get("clusters")
    if isinstance(clusters, dict) and clusters:
        groups: dict[str, list[str]] = {}
        for m, c in clusters.items():
            groups.setdefault(str(c), []).append(str(m))
        body += "<p>Answer clusters:</p>" + table_html(
            [{"cluster": c, "models": ", ".join(sorted(ms))} for c, ms in sorted(groups.items())], [("cluster", "cluster"), ("models", "models")])
    if pts:
        body = f"<p>{len(pts):,} answers, drag to pan, scroll to zoom.</p>" + body
        s.figures.append(Figure("umap-map", umap_chart(pts), "Each dot is one answer; nearby dots answer alike."))
    else:
        body = (f'<p class="not-run">The embedding step did not record map coordinates, so the interactive map is '
                f"not in this page.{link}</p>") + body
    s.body = body
    return s


def _tree_from_similarity(models: Sequence[str], S: Any, scale: tuple[float, float] = (0.0, 1.0)) -> tuple[list, list[str]]:
    """:func:`lineage.lineage_tree` on similarity rescaled from ``scale`` to [0, 1]; returns (linkage, labels)."""
    import numpy as np

    from distill_kit.lineage.tree import lineage_tree

    lo, hi = scale
    labels = [str(m) for m in models]
    return lineage_tree(labels, (np.asarray(S, dtype=float) - lo) / (hi - lo)).linkage.tolist(), labels


def _lineage_section(emb: dict | None, rse: dict | None = None) -> Section:
    s = Section("lineage", "Lineage tree")
    if emb is None and rse is None:
        s.body, s.ran = not_run_note("05 (embeddings) or 04 (RSE)", "the lineage tree"), False
        return s
    lin = (emb or {}).get("lineage") or (emb or {}).get("tree") or (emb or {}).get("dendrogram") or {}
    labels = (lin.get("labels") or lin.get("models")) if isinstance(lin, dict) else None
    linkage = lin.get("linkage") if isinstance(lin, dict) else None
    caption = "Average-linkage clustering of models by answer similarity (embedding step)."
    if labels and linkage is None:
        if lin.get("distance"):
            import numpy as np

            linkage, labels = _tree_from_similarity(labels, 1.0 - np.asarray(lin["distance"], dtype=float))
        elif lin.get("similarity"):
            linkage, labels = _tree_from_similarity(labels, lin["similarity"])
    if (not labels or linkage is None) and rse is not None:
        long = similarity_long(rse)
        models = list(dict.fromkeys(r["a"] for r in long))
        vals = {(r["a"], r["b"]): r["value"] for r in long}
        if len(models) >= 2 and all(vals.get((a, b)) is not None for a in models for b in models):
            S = [[vals[(a, b)] for b in models] for a in models]
            top = max(max(row) for row in S)
            linkage, labels = _tree_from_similarity(models, S, (1.0, 5.0) if top > 1.0 else (0.0, 1.0))
            caption = ("Average-linkage clustering of models by the RSE step's pairwise similarity "
                       "(the embedding step recorded no tree).")
    if not labels or linkage is None:
        s.body = '<p class="not-run">No step recorded a model x model similarity to build the tree from.</p>'
        s.ran = False
        return s
    from distill_kit.lineage.charts import dendrogram
    from distill_kit.lineage.tree import tree_from_linkage

    s.figures.append(Figure("lineage-tree", dendrogram(tree_from_linkage(linkage, labels), title="Lineage tree"), caption))
    return s


def _documented_teachers() -> dict[str, str]:
    """student -> teacher as publicly documented (lineage.csv), to read attributions against;
    human-data controls read "none"."""
    from distill_kit.datasets import DataError
    from distill_kit.lineage.signals import lineage_labels

    try:
        labels = lineage_labels()
    except DataError:  # no data available: the column is simply left out
        return {}
    return {**{c: "none" for c in labels.controls}, **labels.truth}


def _attribution_section(emb: dict | None, link: str = "") -> Section:
    s = Section("attribution", "Teacher attribution")
    if emb is None:
        s.body, s.ran = not_run_note("05 (embeddings)", "the teacher attribution table"), False
        return s
    rows = records(emb, "attribution", "attributions", id_key="student")
    if not rows:
        s.body = f'<p class="not-run">The embedding step recorded no attribution table.{link}</p>'
        s.ran = False
        return s
    truth = _documented_teachers()
    if truth and any(r.get("student") in truth for r in rows):
        for r in rows:
            r.setdefault("documented_teacher", truth.get(r.get("student"), ""))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    body = "<p>Each student's most likely teachers among the candidates (p = calibrated confidence).</p>"
    body += table_html(rows, [(k, k.replace("_", " ")) for k in keys])
    metrics = emb.get("attribution_metrics")
    mrows = [{"metric": k.replace("_", " "), "value": _count(v) if k == "n" or k.endswith("_n") else _num(v)}
             for k, v in metrics.items()] if isinstance(metrics, dict) else []
    acc = _num(emb.get("attribution_accuracy"))
    if acc is not None:
        mrows.append({"metric": "attribution accuracy", "value": acc})
    if _num(emb.get("who_wrote_accuracy")) is not None:
        mrows.append({"metric": "who-wrote-this accuracy (held-out answers)", "value": _num(emb["who_wrote_accuracy"])})
        if _num(emb.get("who_wrote_chance")) is not None:
            mrows.append({"metric": "who-wrote-this chance level", "value": _num(emb["who_wrote_chance"])})
    if mrows:
        body += "<p>Against the documented lineage:</p>" + table_html(mrows, [("metric", "metric"), ("value", "value")])
    s.body = body
    return s


def example_order(keys: Sequence[str], seed: int = 0) -> list[int]:
    """Positions of ``keys`` in a seeded order that depends only on the keys: the same run config
    shows the same examples whatever order its answers arrived in."""
    rank = [hashlib.sha256(f"{seed}:{k}".encode()).hexdigest() for k in keys]
    return sorted(range(len(keys)), key=rank.__getitem__)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _examples_section(ice: dict | None, store_path: str | None, limit: int = 6, seed: int = 0) -> Section:
    """A few raw answers, escaped: readers should see what the judges saw."""
    s = Section("examples", "Example answers")
    rows = records(ice, "examples")
    if not rows and store_path and Path(store_path).is_file():
        from distill_kit.store import Store

        with Store(store_path) as store:
            frame = store.frame(status="ok")
        if frame.height:
            frame = frame[example_order(frame["key"].to_list(), seed)[:limit]]
            rows = frame.rename({"text": "response"}).select("model", "prompt", "response").to_dicts()
    if not rows:
        s.body, s.ran = '<p class="not-run">No answers are stored for this run.</p>', False
        return s
    parts = []
    for r in rows[:limit]:
        label = pick(r, "loose_label", "label", "verdict")
        tag = f" · judged: {esc(label)}" if label is not None else ""
        parts.append(f"<p><strong>{esc(pick(r, 'model'))}</strong>{tag}</p>"
                     f'<div class="answer prompt">{esc(pick(r, "prompt", "query"))}</div>'
                     f'<div class="answer">{esc(pick(r, "response", "text", "answer"))}</div>')
    s.body = "".join(parts)
    return s


def _clip(text: str | None, max_chars: int) -> str:
    text = text or ""
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _fuzz_section(store_path: str | None, top: int = 3, max_chars: int = 700) -> Section:
    """GPTFuzzer results read back from the store: success per mutator and the best mutant templates."""
    import polars as pl

    from distill_kit.ice import fuzz

    s = Section("fuzz", "Jailbreak fuzzing (GPTFuzzer)")
    targets: list[str] = []
    if store_path and Path(store_path).is_file():
        from distill_kit.store import Store

        with Store(store_path) as store:
            targets = [n[: -len(fuzz.FUZZ_SUFFIX)] for n in store.models() if n.endswith(fuzz.FUZZ_SUFFIX)]
            attempts = {t: fuzz.stored_attempts(store, t) for t in targets}
    if not targets:
        s.body, s.ran = ('<p class="not-run">No jailbreak fuzzing in this run: set <code>fuzz_queries</code> above 0 '
                         "in step 02 to attack the live targets with mutated templates.</p>"), False
        return s
    body = ("<p>MCTS-Explore picks a template, the helper model mutates it, the target answers identity probes in "
            "the mutant, and the judge's verdict (identity contradicted) is the reward. Success rate = share of "
            "judged attempts whose answer contradicts the target's identity.</p>")
    for t in targets:
        a = attempts[t]
        body += f"<h3>{esc(t)}: {a.height} attempts</h3>"
        body += table_html(fuzz.success_by_mutator(a).to_dicts(), caption="per mutator")
        for r in fuzz.template_success(a).head(top).to_dicts():
            rate = "–" if r["success_rate"] is None else f"{r['success_rate']:.2f}"
            hits = a.filter((pl.col("template_id") == r["template_id"]) & pl.col("verdict").fill_null(False))
            body += (f"<p>{esc(r['template_id'])} ({esc(r['mutator'])} of {esc(r['parent'])}): success {rate} "
                     f"over {r['judged']} judged attempt(s)</p><div class=\"answer\">{esc(_clip(r['template'], max_chars))}</div>")
            if hits.height:
                body += (f"<p>an answer judged a contradiction, to “{esc(_clip(hits['query'][0], 200))}”:</p>"
                         f"<div class=\"answer\">{esc(_clip(hits['response'][0], max_chars))}</div>")
    s.body = body
    return s


def _usage_section(store_path: str | None) -> Section:
    s = Section("usage", "Model calls")
    if not store_path or not Path(store_path).is_file():
        s.body, s.ran = '<p class="not-run">No response store for this run (no step called a model).</p>', False
        return s
    from distill_kit.store import Store

    with Store(store_path) as store:
        rows = store.usage().to_dicts()
    if not rows:
        s.body, s.ran = '<p class="not-run">No model was called in this run (published answers are read directly).</p>', False
        return s
    s.body = "<p>Every answer is cached in the run's store; re-running the run reuses them.</p>" + table_html(rows, digits=4)
    return s


def _provenance_section(summaries: Mapping[str, dict]) -> Section:
    import platform
    from importlib import metadata

    from distill_kit import datasets

    s = Section("methods", "Methods and data provenance")
    by_set: dict[str, dict[str, Any]] = {}
    for path, e in datasets.registry().items():
        top = path.split("/", 1)[0]
        d = by_set.setdefault(top, {"dataset": top, "files": 0, "source": ""})
        d["files"] += 1
        if e.url and not d["source"]:
            d["source"] = re.sub(r"^https://raw\.githubusercontent\.com/([^/]+/[^/]+)/([0-9a-f]{7})[0-9a-f]*/.*$",
                                 r"github.com/\1 @ \2", e.url)
    try:
        ddir = datasets.data_dir()
    except ValueError:
        ddir = None
    versions = []
    for pkg in ("distill-kit", "polars", "altair", "vl-convert-python", "papermill", "sentence-transformers", "umap-learn"):
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    used = sorted({str(f) for p in summaries.values() for f in (p.get("data_files") or p.get("provenance") or [])
                   if isinstance(f, str)})
    s.body = METHODS_HTML + "<h3>Data</h3>" + table_html(list(by_set.values()), [("dataset", "dataset"), ("files", "files"),
                                                                                  ("source", "source (pinned commit)")])
    s.body += (f"<p>Data read from {'a local copy (DISTILL_KIT_DATA_DIR)' if ddir else 'the download cache'}; every "
               "registered file's sha256 is checked against the registry.</p>")
    try:
        own = datasets.unregistered()
        s.body += f"<p>Lineage: <code>{esc(datasets.lineage_source())}</code>.</p>"
    except ValueError:
        own = []
    if own:
        s.body += ("<p>Not in the registry, read as the user's own data without a checksum: "
                   + ", ".join(f"<code>{esc(u)}</code>" for u in own) + ".</p>")
    if used:
        s.body += "<p>Files used by this run: " + ", ".join(f"<code>{esc(u)}</code>" for u in used) + "</p>"
    s.body += f"<p>Software: Python {esc(platform.python_version())}; {esc(', '.join(versions))}.</p>"
    return s


def _reference_lines() -> dict[str, str]:
    """reference -> product line (lineage.csv), so the verdict can name a teacher's line; {} without data."""
    from distill_kit.datasets import DataError
    from distill_kit.lineage.signals import lineage_labels

    try:
        return dict(lineage_labels().lines)
    except DataError:
        return {}


def _verdict_section(ice: dict | None, rse: dict | None, emb: dict | None) -> Section:
    """One row and one rule-built sentence per model (``distill_kit.verdict``); this only renders it."""
    from distill_kit import verdict

    s = Section("verdict", "Verdict per model")
    if ice is None and rse is None and emb is None:
        s.body, s.ran = not_run_note("03, 04 or 05", "the per-model verdict"), False
        return s
    rows = verdict.verdict_table(ice, rse, emb, lines=_reference_lines())
    if not rows:
        s.body = '<p class="not-run">The steps ran but scored no model.</p>'
        return s
    refs = sorted({r for v in rows for r in v.rse})
    flat = []
    for v in rows:
        row = {"model": v.model, "verdict": v.sentence,
               "LIS": _interval(v.lis, v.lis_lo, v.lis_hi), "LIS method": v.lis_method,
               "labels used": v.lis_labels, "SIS": _interval(v.sis, v.sis_lo, v.sis_hi),
               "closest teacher line": v.teacher_line, "confidence": v.teacher_confidence,
               "distillation score": v.distillation_score}
        for ref in refs:
            row[f"RSE vs {ref}"] = _interval(*v.rse[ref], digits=2) if ref in v.rse else None
        flat.append(row)
    cols = [(k, k) for k in flat[0]]
    s.body = ("<p>Every number with its 95% interval; LIS/SIS are prevalence-corrected where step 03 recorded it "
              "(method and labels used shown). Each sentence is built by fixed rules from the numbers in its row.</p>"
              + table_html(flat, cols))
    return s


def _interval(value: Any, lo: Any = None, hi: Any = None, digits: int = 3) -> str | None:
    v, a, b = _num(value), _num(lo), _num(hi)
    if v is None:
        return None
    return f"{v:.{digits}f} [{a:.{digits}f}, {b:.{digits}f}]" if a is not None and b is not None else f"{v:.{digits}f}"


def _paired_section(ice: dict | None, rse: dict | None) -> Section:
    """Is A significantly more like the reference than B? The paired tables steps 03 and 04 recorded."""
    s = Section("paired", "Paired comparisons on the same prompts")
    tables = [(f"RSE vs {(rse or {}).get('reference', 'the reference')} (overall, 1-5)", (rse or {}).get("paired_rse"), 3),
              ("LIS (judge verdicts, McNemar)", (ice or {}).get("paired_lis"), 4)]
    tables = [(t, rows, d) for t, rows, d in tables if isinstance(rows, list) and rows]
    if ice is None and rse is None:
        s.body, s.ran = not_run_note("03 or 04", "the paired comparisons"), False
        return s
    if not tables:
        s.body = ('<p class="empty">Steps 03/04 recorded no paired comparison (fewer than two models on shared '
                  "prompts, or a run made before paired tests existed).</p>")
        return s
    cols = [("a", "A"), ("b", "B"), ("n", "prompts"), ("mean_a", "A"), ("mean_b", "B"), ("diff", "A - B"),
            ("lo", "95% lo"), ("hi", "95% hi"), ("p_value", "p"), ("p_holm", "p (Holm)"), ("significant", "significant"),
            ("test", "test")]
    body = ("<p>Differences on the prompts both models answered, with paired bootstrap 95% intervals; p-values are "
            "Holm-adjusted over each table, so a “significant” row holds with 95% confidence for the table as a whole.</p>")
    for title, rows, digits in tables:
        body += f"<h3>{esc(title)}</h3>" + table_html(rows, cols, digits)
    s.body = body
    return s


def build_report(run_dir: str | Path | None, store_path: str | None = None, title: str | None = None) -> Report:
    """Assemble every section from ``run_dir/summary/*.json`` (and the store, for usage/examples).

    ``run_dir=None`` builds the empty report: every section says which step would fill it.
    """
    from distill_kit.run.pipeline import finished_summaries

    run_dir = Path(run_dir) if run_dir else None
    summaries = finished_summaries(run_dir) if run_dir else {}  # never a killed attempt's leftovers
    cfg = (_read_json(run_dir / "config.json") if run_dir else None) or {}
    from distill_kit.run.pipeline import step_summaries

    written = step_summaries(run_dir) if run_dir else {}
    ice, rse, emb = (step_summary(summaries, p, written) for p in ("03", "04", "05"))
    name = run_dir.name if run_dir else "no run"
    rep = Report(title or f"distill-kit report: {cfg.get('name', name)}",
                 subtitle=f"Distillation quantification · run {name}")
    overview = _overview_section(run_dir, summaries) if run_dir else Section(
        "overview", "Run overview", '<p class="not-run">No run found: run <code>distill-kit run demo</code> first.</p>', ran=False)
    for sec in (overview, _verdict_section(ice, rse, emb), _ice_section(ice), _rse_section(rse), _paired_section(ice, rse),
                _combined_section(ice, rse), _similarity_section(rse, emb), _umap_section(emb, _step_link(written, "05")),
                _lineage_section(emb, rse), _attribution_section(emb, _step_link(written, "05")),
                _examples_section(ice, store_path, seed=_int(cfg.get("seed"))), _fuzz_section(store_path),
                _usage_section(store_path), _provenance_section(summaries)):
        rep.add(sec)
    return rep


# ---------------------------------------------------------------------------- notebook helpers


def resolve_run_dir(run_dir: str = "") -> Path | None:
    """The run to report on: ``run_dir`` if given, else the newest ``runs/*`` with summaries, else None."""
    from distill_kit.paths import RUNS_DIR, SUMMARY_DIR

    if run_dir:
        path = Path(run_dir)
        if not path.is_dir():
            raise ValueError(f"run_dir {run_dir!r} is not a directory")
        return path
    runs = [p for p in RUNS_DIR.glob("*") if (p / SUMMARY_DIR).is_dir()]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def report_path(run_dir: Path | None) -> Path:
    """Where the HTML goes: ``<run_dir>/report.html`` (or the cache when there is no run)."""
    from distill_kit.paths import REPORT_FILE, cache_dir

    return (run_dir if run_dir else cache_dir() / "report" / "no-run") / REPORT_FILE


def show_in_notebook(rep: Report) -> None:
    """Show the report inside the notebook: escaped section bodies and static SVG charts.

    Static SVG (not the interactive embed) so the executed notebook and its nbconvert HTML need
    neither JavaScript nor a network; the interactive page is the report.html file.
    """
    import vl_convert as vlc
    from IPython.display import HTML, SVG, display

    for s in rep.sections:
        display(HTML(f"<h2>{esc(s.title)}</h2>{s.body}"))
        for fig in s.figures:
            display(SVG(vlc.vegalite_to_svg(chart_spec(fig.chart), vl_version=_vl_version())))
