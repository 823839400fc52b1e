"""(moved from distill_kit.ice.browse)"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl


def _pre(text: str | None, limit: int, max_height: int = 320) -> str:
    """Escaped, wrapped text, clipped to ``limit`` characters and scrolling past ``max_height`` pixels."""
    t = text or ""
    t = t if len(t) <= limit else t[:limit] + " [...]"
    style = ("white-space:pre-wrap;word-break:normal;overflow-wrap:break-word;text-align:left;font-family:inherit;"
             f"margin:0;max-height:{max_height}px;overflow:auto")
    return f"<pre style='{style}'>{html.escape(t)}</pre>"
def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if np.isnan(v) else f"{v:.2f}"
    if isinstance(v, bool):
        return str(int(v))
    return str(v)
def html_table(frame: pl.DataFrame, cols: Sequence[str], limit: int, width: int, what: str) -> str:
    """A scrollable table of the first ``limit`` rows, every cell escaped and clipped to ``width`` characters."""
    td = "vertical-align:top;text-align:left;white-space:pre-wrap;word-break:normal;overflow-wrap:break-word"
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in cols)
    body = []
    for row in frame.head(limit).iter_rows(named=True):
        cells = []
        for c in cols:
            t = _fmt(row[c])
            t = t if len(t) <= width else t[: width - 1] + "…"
            cells.append(f"<td style='{td}'>{html.escape(t)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class='dk-static' style='max-height:480px;overflow:auto'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div><p>{min(limit, frame.height)} of {frame.height} {what}</p>")
