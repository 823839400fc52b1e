"""Report assembly: escaping, graceful degradation, static export. Summaries here are test fixtures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from distill_kit.run import report
from distill_kit.run.pipeline import record_summary

XSS = "<script>alert(1)</script>"


def make_fake_run(run_dir: Path, steps: tuple[str, ...] = ("03", "04", "05")) -> Path:
    """A run directory with fabricated step summaries (fixture data, never shown to users)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = {"name": "fixture", "description": f"fixture run {XSS}", "seed": 1,
           "steps": [{"notebook": s} for s in steps] + [{"notebook": "06"}]}
    (run_dir / "config.json").write_text(json.dumps(cfg))
    names = {"03": "03-ice", "04": "04-rse", "05": "05-embeddings"}
    state = {"steps": {names[s]: {"status": "ok", "seconds": 1.0} for s in steps}}
    (run_dir / "state.json").write_text(json.dumps(state))
    models = ["model-a", "model-b", f"evil{XSS}"]
    if "03" in steps:
        record_summary(str(run_dir), "03-ice", {
            "judge": "offline keyword judge",
            "scores": [{"model": m, "loose": 0.1 * (i + 1), "loose_lo": 0.05 * (i + 1), "loose_hi": 0.15 * (i + 1),
                        "strict": 0.05 * i, "strict_lo": 0.0, "strict_hi": 0.1 * (i + 1), "n": 40}
                       for i, m in enumerate(models)],
            "examples": [{"model": models[2], "prompt": "Who made you?", "response": f"I am {XSS} GPT", "loose_label": True}],
        })
    if "04" in steps:
        record_summary(str(run_dir), "04-rse", {
            "rse": {m: {"style": 2.0 + i, "logical_structure": 2.5 + i, "content_detail": 3.0 + 0.5 * i} for i, m in enumerate(models)},
            "similarity": {"models": models, "matrix": [[1.0, 0.4, 0.2], [0.4, 1.0, 0.6], [0.2, 0.6, 1.0]]},
        })
    if "05" in steps:
        record_summary(str(run_dir), "05-embeddings", {
            "umap": [{"model": models[i % 3], "x": float(i % 7), "y": float(i % 5)} for i in range(60)],
            "lineage": {"labels": models, "distance": [[0, 0.3, 0.8], [0.3, 0, 0.7], [0.8, 0.7, 0]]},
            "attribution": [{"student": f"stu{XSS}", "predicted": "model-a", "teacher": "model-a", "correct": True}],
            "attribution_accuracy": 1.0,
        })
    return run_dir


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> Path:
    run_dir = make_fake_run(tmp_path_factory.mktemp("run"))
    rep = report.build_report(run_dir)
    return report.write_report(rep, run_dir / "report.html")


def test_esc_and_script_json_neutralise_markup():
    assert report.esc(XSS) == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert report.esc('a"b') == "a&quot;b"
    js = report.script_json({"t": XSS + "&"})
    assert "<" not in js and ">" not in js and "&" not in js
    assert json.loads(js) == {"t": XSS + "&"}


def test_model_text_renders_as_text(full_report: Path):
    page = full_report.read_text()
    # the only <script> tags are the JSON specs and the inline Vega bundle
    assert XSS not in page
    assert "alert(1)" not in re.sub(r"&lt;script&gt;alert\(1\)&lt;/script&gt;|\\u003cscript\\u003ealert\(1\)\\u003c/script\\u003e", "", page)
    assert "I am &lt;script&gt;alert(1)&lt;/script&gt; GPT" in page
    assert "stu&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_all_sections_present_with_charts_and_static_figures(full_report: Path):
    page = full_report.read_text()
    for key in ("ice", "rse", "ice-rse", "similarity", "umap", "lineage", "attribution", "methods"):
        assert f'<section id="{key}" class="ran">' in page, key
    assert "Step not run" not in page
    assert page.count('data-vega-target="chart-') == 6
    assert "https://cdn" not in page and "cdn.jsdelivr" not in page  # fully offline
    figs = full_report.parent / "figures"
    for name in ("ice-scores", "rse-scores", "ice-x-rse", "similarity-heatmap", "umap-map", "lineage-tree"):
        assert (figs / f"{name}.svg").read_text().lstrip().startswith("<svg"), name
        assert (figs / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_rse_overall_is_mean_of_aspects_and_join():
    rse = {"rse": [{"model": "m", "style": 2, "logic": 3, "content": 4}, {"model": "x", "overall": 1.5}]}
    rows = {r["model"]: r for r in report.rse_rows(rse)}
    assert rows["m"]["overall"] == pytest.approx(3.0)
    assert rows["x"]["overall"] == 1.5
    ice = {"scores": [{"model": "m", "lis": 0.4, "lis_ci": [0.3, 0.5], "sis": 0.1}]}
    (r,) = report.ice_rows(ice)
    assert (r["loose"], r["loose_lo"], r["loose_hi"], r["strict"]) == (0.4, 0.3, 0.5, 0.1)


def test_missing_steps_degrade_to_notes_without_numbers(tmp_path: Path):
    run_dir = make_fake_run(tmp_path / "run", steps=("03",))
    page = report.render_html(report.build_report(run_dir), static_dir=None)
    for key in ("rse", "ice-rse", "umap", "lineage", "attribution"):
        section = re.search(rf'<section id="{key}" class="missing">(.*?)</section>', page, re.S)
        assert section, key
        assert "Step not run" in section.group(1)
        assert "<table" not in section.group(1) and "data-vega-target" not in section.group(1)
    assert '<section id="ice" class="ran">' in page


def test_empty_run_dir_has_no_charts_and_no_bundle(tmp_path: Path):
    page = report.render_html(report.build_report(tmp_path), static_dir=None)
    assert page.count("Step not run") >= 6
    assert "data-vega-target" not in page and len(page) < 200_000  # no 900 kB bundle without charts


def test_dendrogram_segments_cover_all_leaves():
    from distill_kit.lineage.tree import tree_from_linkage

    tree = tree_from_linkage([[0, 1, 0.3, 2], [2, 3, 0.8, 3]], ["a", "b", "c"])  # a recorded linkage, as the report reads it
    assert set(tree.leaves) == {"a", "b", "c"}
    assert tree.segments.height == 6 and tree.segments["y"].max() == pytest.approx(0.8)


def test_unknown_static_format_is_an_error(tmp_path: Path):
    chart = report.ice_chart([{"model": "m", "loose": 0.2, "strict": 0.1}])
    with pytest.raises(ValueError, match="svg or png"):
        report.export_static(chart, tmp_path / "x", ["gif"])


def test_step_summary_found_by_writer_prefix_or_alias():
    summaries = {"probes": {"a": 1}, "identity-scores": {"scores": []}, "rse": {"rse": []}, "04-extra": {"x": 2}}
    assert report.step_summary(summaries, "03", {"03-ice": ["identity-scores"]}) == {"scores": []}
    assert report.step_summary(summaries, "03") == {"scores": []}  # by alias
    assert report.step_summary(summaries, "04") == {"x": 2}  # a 04-* name wins over aliases
    assert report.step_summary(summaries, "04", {"04-rse": ["rse", "04-extra"]}) == {"rse": [], "x": 2}
    assert report.step_summary(summaries, "05") is None


def test_lineage_tree_falls_back_to_rse_similarity_and_says_so():
    rse = {"matrices": {"overall": [{"model": "a", "a": 5.0, "b": 4.0, "c": 2.0},
                                    {"model": "b", "a": 4.0, "b": 5.0, "c": 2.5},
                                    {"model": "c", "a": 2.0, "b": 2.5, "c": 5.0}]}}
    sec = report._lineage_section({"tree_leaves": ["a", "b", "c"]}, rse)
    assert sec.ran and len(sec.figures) == 1 and "RSE step" in sec.figures[0].caption
    linkage, labels = report._tree_from_similarity(["a", "b", "c"], [[5, 4, 2], [4, 5, 2.5], [2, 2.5, 5]], (1, 5))
    # a and b (similarity 4 of 5 -> distance 0.25) merge first; c joins at the mean distance to them
    assert linkage[0][:3] == [0.0, 1.0, pytest.approx(0.25)]
    assert linkage[1][2] == pytest.approx(1 - ((2 - 1) / 4 + (2.5 - 1) / 4) / 2)
    assert report._lineage_section({"tree_leaves": ["a"]}, None).ran is False


def test_embedding_section_without_points_links_to_the_step():
    sec = report._umap_section({"homogenisation": [{"set": "all models", "index": 0.4, "accuracy": 0.5, "chance": 0.2, "n_models": 5}],
                                "clusters": {"a": 0, "b": 0, "c": 1}}, report._step_link({"05-embed": ["x"]}, "05"))
    assert 'href="html/05-embed.html"' in sec.body and "did not record map coordinates" in sec.body
    assert "a, b" in sec.body and not sec.figures


def test_embedding_tree_and_points_from_step_05_are_drawn():
    emb = {"tree": {"models": ["a", "b", "c"], "linkage": [[0, 1, 0.2, 2], [2, 3, 0.6, 3]]},
           "umap": [{"model": "a", "x": 0.1, "y": 0.2, "preview": XSS}, {"model": "b", "x": 1.0, "y": -1.0}]}
    tree = report._lineage_section(emb, None)
    assert tree.ran and "embedding step" in tree.figures[0].caption
    umap = report._umap_section(emb)
    assert umap.figures and "2 answers" in umap.body
    spec = json.dumps(report.chart_spec(umap.figures[0].chart))
    assert XSS not in spec  # only model, x, y are carried into the chart


def test_attribution_counts_print_as_integers_and_big_maps_get_twenty_colours():
    emb = {"attribution": [{"student": "s", "top1": "a"}],
           "attribution_metrics": {"top1": 0.8, "n": 5.0, "labelled_n": 4.0}}
    body = report._attribution_section(emb).body
    assert ">5<" in body and ">4<" in body and "5.000" not in body and "0.800" in body
    pts = [{"model": f"m{i}", "x": float(i), "y": 0.0} for i in range(12)]
    assert report.chart_spec(report.umap_chart(pts))["encoding"]["color"]["scale"]["scheme"] == "tableau20"
    assert report.chart_spec(report.umap_chart(pts[:3]))["encoding"]["color"]["scale"]["scheme"] == "tableau10"


def test_combined_section_says_how_many_models_meet():
    ice = {"scores": [{"model": m, "loose": 0.2, "strict": 0.1, "n": 10} for m in ("a", "b", "c")]}
    rse = {"rse": {m: {"style": 3.0, "logical_structure": 3.0, "content_detail": 3.0} for m in ("c", "d")}}
    sec = report._combined_section(ice, rse)
    assert "1 model(s) have both scores; 2 have only an ICE score and 1 only an RSE score" in sec.body
    assert len(sec.figures) == 1
    both = report._combined_section(ice, {"rse": {m: rse["rse"]["c"] for m in ("a", "b", "c")}})
    assert "only an ICE score" not in both.body
