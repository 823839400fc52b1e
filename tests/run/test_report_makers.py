"""The report's identity maker profile: notebook 03's ``makers`` rows as a table, one sentence per model and a chart."""

from __future__ import annotations

from distill_kit import html
from distill_kit.run import report
from tests.helpers.fake_run import XSS, identity_summary

ROWS = [
    {"model": "qwen-x", "n": 1000, "n_own_voice": 420, "profile": {"alibaba": 0.23, "anthropic": 0.19, "none": 0.58},
     "profile_ci": {"alibaba": [0.19, 0.27], "anthropic": [0.16, 0.23], "none": [0.53, 0.62]},
     "own_makers": ["alibaba"], "top_foreign": "anthropic", "share": 0.19, "baseline": 0.002, "p": 4.8e-178,
     "p_adj": 9.6e-178, "alpha": 0.05, "passed": True},
    {"model": "claude" + XSS, "n": 1000, "n_own_voice": 798, "profile": {"anthropic": 0.796, "openai": 0.002, "none": 0.202},
     "profile_ci": {"anthropic": [0.76, 0.83], "openai": [0.0, 0.01], "none": [0.17, 0.24]},
     "own_makers": ["anthropic"], "top_foreign": "openai", "share": 0.002, "baseline": 0.0, "p": 0.083,
     "p_adj": 0.083, "alpha": 0.05, "passed": False},
]


def test_the_ice_section_shows_the_maker_profile_and_the_test() -> None:
    section = report.ice_section(identity_summary(makers=ROWS))
    assert "Whose maker does each model claim?" in section.body
    assert "qwen-x: claims Anthropic more often than its baseline" in section.body
    assert "no foreign maker stands out at alpha = 0.05 (top: OpenAI" in section.body
    assert "4.8e-178" in section.body and XSS not in section.body  # model names escaped
    figure = next(f for f in section.figures if f.name == "ice-makers")
    page = html.render_page(report.Page("t", sections=[section]), static_dir=None)
    assert page.count('data-vega-target="chart-') == 2 and "Anthropic" in str(figure.chart.to_dict())


def test_a_run_without_maker_rows_shows_no_maker_profile() -> None:
    section = report.ice_section(identity_summary())
    assert "Whose maker" not in section.body and [f.name for f in section.figures] == ["ice-scores"]
