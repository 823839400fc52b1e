"""Shared Altair building blocks: every chart module imports Altair from here.

Charts carry their data inline. Altair refuses more than 5,000 rows by default (a guard against
accidentally embedding a huge frame); notebook 05's answer map at the paper's scale holds ~7,000 points
(every answer of every model), so that guard is lifted here, where every chart's size is ours to choose.
"""

from __future__ import annotations

import altair as alt

alt.data_transformers.disable_max_rows()

__all__ = ["alt"]
