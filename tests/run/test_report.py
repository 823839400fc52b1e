"""Report assembly: escaping, graceful degradation, static export. Summaries come from tests.helpers.fake_run,
built through the summaries models (the shapes notebooks record)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from distill_kit import html
from distill_kit.ice.charts import report_scores_chart
from distill_kit.lineage.charts import answer_map
from distill_kit.run import report
from tests.helpers.fake_run import (
    STUDENT,
    XSS,
    identity_summary,
    lineage_summary,
    make_fake_run,
    similarity_summary,
)


def page_of(run_dir: Path | None) -> str:
    store = run_dir / "store.sqlite" if run_dir else None
    rep = report.build_report(run_dir, str(store) if store and store.is_file() else None)
    return html.render_page(rep, static_dir=None)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> Path:
    run_dir = make_fake_run(tmp_path_factory.mktemp("run"))
    rep = report.build_report(run_dir, str(run_dir / "store.sqlite"))
    return html.write_page(rep, run_dir / "report.html")


def test_esc_and_script_json_neutralise_markup():
    assert html.esc(XSS) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert html.esc('a"b') == "a&quot;b"
    js = html.script_json({"t": XSS + "&"})
    assert "<" not in js and ">" not in js and "&" not in js
    assert json.loads(js) == {"t": XSS + "&"}


def test_sentences_get_a_readable_column_and_notebooks_get_the_table_rules(monkeypatch: pytest.MonkeyPatch):
    verdict = "gpt-x answers like the gpt-4 line (lineage test p_adj=0.004, alpha=0.05); contradicts its identity"
    table = html.table_html([{"model": "gpt-x", "verdict": verdict, "LIS": 0.3}])
    assert '<td class="txt">gpt-x</td>' in table and '<td class="txt long">' in table and '<td class="num">' in table
    shown: list[str] = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(getattr(obj, "data", "")))
    html.show_in_notebook(html.Page("t", sections=[html.Section("s", "S", table)]))
    assert shown[0].startswith("<style>") and "td.long{min-width" in shown[0] and "text-align:left !important" in shown[0]
    assert verdict in shown[1]


def test_model_text_renders_as_text(full_report: Path):
    page = full_report.read_text()
    # the only <script> tags are the JSON specs and the inline Vega bundle
    assert XSS not in page
    assert "alert(1)" not in re.sub(r"&lt;script&gt;alert\(1\)&lt;/script&gt;|\\u003cscript\\u003ealert\(1\)\\u003c/script\\u003e", "", page)
    assert "I am &lt;script&gt;alert(1)&lt;/script&gt; GPT" in page  # the stored answer, in the examples
    assert "stu&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_all_sections_present_with_charts_and_static_figures(full_report: Path):
    page = full_report.read_text()
    for key in ("verdict", "ice", "rse", "ice-rse", "similarity", "umap", "lineage", "attribution", "examples", "methods"):
        assert f'<section id="{key}" class="ran">' in page, key
    assert "Step not run" not in page and "did not record" not in page
    assert page.count('data-vega-target="chart-') == 6
    assert "https://cdn" not in page and "cdn.jsdelivr" not in page  # fully offline
    figs = full_report.parent / "figures"
    for name in ("ice-scores", "rse-scores", "ice-x-rse", "similarity-heatmap", "umap-map", "lineage-tree"):
        assert (figs / f"{name}.svg").read_text().lstrip().startswith("<svg"), name
        assert (figs / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_rows_read_the_fields_notebooks_record():
    rows = {r["model"]: r for r in report.rse_rows(similarity_summary())}
    a = rows["model-a"]
    assert (a["style"], a["logic"], a["content"], a["overall"]) == (2.0, 2.5, 3.0, 2.5)  # aspects from rse_by_granularity
    assert (a["overall_lo"], a["overall_hi"], a["n"], a["reference"], a["judge"]) == (2.0, 3.0, 10, "ref", "offline")
    ice = identity_summary(live=[{"model": "live-m", "n": 8, "lis": 0.4, "lis_lo": 0.3, "lis_hi": 0.5, "sis": 0.1}])
    by = {r["model"]: r for r in report.ice_rows(ice)}
    # one name end to end: the report's rows carry notebook 03's lis/sis, not a renamed copy
    assert by["model-b"]["source"] == "replay" and by["model-b"]["lis"] == pytest.approx(0.2)
    assert (by["live-m"]["source"], by["live-m"]["lis_lo"], by["live-m"]["sis"]) == ("live", 0.3, 0.1)
    assert not {k for r in by.values() for k in r if "loose" in k or "strict" in k}
    long = report.similarity_long(similarity_summary())
    assert {"a": "model-a", "b": "model-b", "value": 0.4} in long and len(long) == 9


def test_missing_steps_degrade_to_notes_without_numbers(tmp_path: Path):
    page = page_of(make_fake_run(tmp_path / "run", steps=("03",)))
    for key in ("rse", "ice-rse", "similarity", "umap", "lineage", "attribution"):
        section = re.search(rf'<section id="{key}" class="missing">(.*?)</section>', page, re.S)
        assert section, key
        assert "Step not run" in section.group(1)
        assert re.search(r"step 0[45]-[a-z-]+ is not part of this run", section.group(1)), key  # the contract's name
        assert "<table" not in section.group(1) and "data-vega-target" not in section.group(1)
    assert '<section id="ice" class="ran">' in page


def test_empty_run_dir_has_no_charts_and_no_bundle(tmp_path: Path):
    page = page_of(tmp_path)
    assert page.count("Step not run") >= 6
    assert "data-vega-target" not in page and len(page) < 200_000  # no 900 kB bundle without charts


def test_dendrogram_segments_cover_all_leaves():
    from distill_kit.lineage.tree import tree_from_linkage

    tree = tree_from_linkage([[0, 1, 0.3, 2], [2, 3, 0.8, 3]], ["a", "b", "c"])  # a recorded linkage, as the report reads it
    assert set(tree.leaves) == {"a", "b", "c"}
    assert tree.segments.height == 6 and tree.segments["y"].max() == pytest.approx(0.8)


def test_unknown_static_format_is_an_error(tmp_path: Path):
    chart = report_scores_chart([{"model": "m", "lis": 0.2, "sis": 0.1}])
    with pytest.raises(ValueError, match="svg or png"):
        html.export_static(chart, tmp_path / "x", ["gif"])


def test_a_summary_under_another_name_is_refused_and_an_undeclared_file_is_named_not_read(tmp_path: Path):
    """One name per step: notebook 03's scores under another name are an error when written; a file no contract
    declares (another project's notebook) is not read as notebook 03's, and the overview names it."""
    from distill_kit.summaries import SummaryError, record_summary

    with pytest.raises(SummaryError, match="no step contract has this name"):
        record_summary(str(tmp_path), "03-ice", identity_summary().model_dump())
    (tmp_path / "summary").mkdir()
    (tmp_path / "summary" / "03-ice.json").write_text(identity_summary().model_dump_json())
    (tmp_path / "config.json").write_text(json.dumps({"steps": [{"notebook": "03-ice"}]}))
    page = page_of(tmp_path)
    assert '<section id="ice" class="missing">' in page
    assert "no step contract declares the summaries <code>03-ice</code>" in page


def test_lineage_tree_is_drawn_as_recorded_or_the_section_says_it_was_not():
    sec = report.lineage_section(lineage_summary())
    assert sec.ran and len(sec.figures) == 1 and "embedding step" in sec.figures[0].caption
    none = report.lineage_section(lineage_summary(tree=None))
    assert not none.ran and "did not record a lineage tree" in none.body and not none.figures
    assert "Step not run" in report.lineage_section(None).body


def test_embedding_section_without_points_links_to_the_step():
    emb = lineage_summary(umap=[], homogenisation=[{"set": "all models", "index": 0.4, "accuracy": 0.5, "chance": 0.2,
                                                    "n_models": 5}], clusters={"a": 0, "b": 0, "c": 1})
    sec = report.umap_section(emb, report.step_link({"05-embed": ["05-embed-and-cluster"]}, "05-embed-and-cluster"))
    assert 'href="html/05-embed.html"' in sec.body and "did not record map coordinates" in sec.body
    assert "a, b" in sec.body and not sec.figures


def test_embedding_points_from_step_05_are_drawn_without_extra_text():
    emb = lineage_summary(umap=[{"model": "a", "x": 0.1, "y": 0.2, "preview": XSS}, {"model": "b", "x": 1.0, "y": -1.0}])
    umap = report.umap_section(emb)
    assert umap.figures and "2 answers" in umap.body
    spec = json.dumps(html.chart_spec(umap.figures[0].chart))
    assert XSS not in spec  # only model, x, y are carried into the chart


def test_attribution_counts_print_as_integers_and_big_maps_get_twenty_colours():
    emb = lineage_summary(attribution_metrics={"top1": 0.8, "n": 5.0, "labelled_n": 4.0})
    body = report.attribution_section(emb).body
    assert ">5<" in body and ">4<" in body and "5.000" not in body and "0.800" in body
    pts = [{"model": f"m{i}", "x": float(i), "y": 0.0} for i in range(12)]
    assert html.chart_spec(answer_map(pts))["encoding"]["color"]["scale"]["scheme"] == "tableau20"
    assert html.chart_spec(answer_map(pts[:3]))["encoding"]["color"]["scale"]["scheme"] == "tableau10"


def test_attribution_shows_the_documented_teachers_step_05_recorded():
    with_truth = report.attribution_section(lineage_summary()).body
    assert "<th>documented teacher</th>" in with_truth and "did not record" not in with_truth
    without = report.attribution_section(lineage_summary(documented_teachers=None)).body
    assert "<th>documented teacher</th>" not in without and "did not record the documented teachers" in without
    assert html.esc(STUDENT) in without


TESTED = {"lineage_test_alpha": 0.05, "lineage_test_method": "word/hard/sum", "lineage_test_null_models": ["c1", "c2"],
          "lineage_test": [{"target": STUDENT, "line": "a-line", "p": 0.001, "p_adj": 0.004, "named": True,
                            "documented_line": "a-line"}]}


def test_verdict_names_the_teacher_line_only_where_step_05s_test_passed():
    sec = report.verdict_section(None, None, lineage_summary(**TESTED))
    assert "answers like the a-line line (lineage test p_adj=0.004, alpha=0.05)" in sec.body
    assert "<th>p (Holm)</th>" in sec.body and "named only where step 05" in sec.body
    failed = {**TESTED, "lineage_test": [{**TESTED["lineage_test"][0], "p_adj": 0.2, "named": False}]}
    assert "no lineage signal at alpha=0.05 (best line a-line, p_adj=0.200)" in report.verdict_section(
        None, None, lineage_summary(**failed)).body
    old = report.verdict_section(None, None, lineage_summary(reference_lines=None))  # a run before the test
    assert "answers like" not in old.body and "teacher line not tested" in old.body
    assert "did not record the references" in old.body
    thin = report.verdict_section(None, None, lineage_summary(lineage_test_note="lineage test: too few pairs <x>"))
    assert "too few pairs &lt;x&gt;" in thin.body


def test_attribution_section_shows_the_lineage_test():
    body = report.attribution_section(lineage_summary(**TESTED)).body
    assert "<h3>Lineage test</h3>" in body and "2 documented models" in body and "0.0040" in body
    assert "Lineage test" not in report.attribution_section(lineage_summary()).body


def test_combined_section_says_how_many_models_meet():
    ice = identity_summary(["a", "b", "c"])
    sec = report.combined_section(ice, similarity_summary(["c", "d", "e"]))
    assert "1 model(s) have both scores; 2 have only an ICE score and 2 only an RSE score" in sec.body
    assert len(sec.figures) == 1
    both = report.combined_section(ice, similarity_summary(["a", "b", "c"]))
    assert "only an ICE score" not in both.body


def test_ice_x_rse_rows_take_notebook_04s_summary_while_it_is_built():
    """Notebook 04 joins its own, not yet recorded, summary dict with step 03's."""
    ice, rse = identity_summary(["a", "b"]), similarity_summary(["b", "c", "d"])
    rows = report.ice_x_rse_rows(ice.model_dump(), rse.model_dump(exclude_unset=True))
    assert rows == report.ice_x_rse_rows(ice, rse)
    assert [(r["model"], r["rse_source"]) for r in rows] == [("b", "measured")]


def test_ice_x_rse_is_recorded_once_by_the_report_step_and_lifted_from_it(tmp_path: Path):
    """Notebooks 03 and 04 no longer carry the combined figure; notebook 06 records it, and summary.json lifts
    that one list (not "the longest list" of several)."""
    from distill_kit.run.pipeline import merge_summaries
    from distill_kit.run.plan import RunConfig
    from distill_kit.summaries import IdentitySummary, ReportSummary, SimilaritySummary, record_summary

    assert "ice_x_rse" not in IdentitySummary.model_fields and "ice_x_rse" not in SimilaritySummary.model_fields
    run_dir = make_fake_run(tmp_path / "run", steps=("03", "04"), store=False)
    rows = report.run_ice_x_rse(run_dir)
    assert rows and {r["rse_source"] for r in rows} == {"measured"}
    record_summary(str(run_dir), ReportSummary.build({"report": "report.html", "ice_x_rse": rows,
                                                      "missing_steps": report.missing_steps(run_dir)}))
    state = json.loads((run_dir / "state.json").read_text())
    state["steps"]["06-report"] = {"status": "ok", "summaries": ["06-report"]}
    (run_dir / "state.json").write_text(json.dumps(state))
    out = json.loads(merge_summaries(run_dir, RunConfig(name="t", steps=[{"notebook": "06"}])).read_text())
    assert out["ice_x_rse"] == out["steps"]["06-report"]["ice_x_rse"] == json.loads(json.dumps(rows))
    assert out["steps"]["06-report"]["missing_steps"] == ["02-collect-responses", "05-embed-and-cluster"]
    assert [k for k, v in out["steps"].items() if "ice_x_rse" in v] == ["06-report"]
