"""The paper's published results beside ours (``distill_kit.paper``), on the real data folder."""

from __future__ import annotations

import math

from distill_kit import datasets, paper


def test_the_side_by_side_is_skipped_with_the_reason(data_dir) -> None:
    record, line = paper.paper_rse_record(n_prompts=0)
    assert record is None and "skipped: paper_prompts=0" in line
    record, line = paper.paper_rse_record("no-such-reference", n_prompts=5)
    assert record is None and "'no-such-reference' absent" in line


def test_the_side_by_side_measures_every_counterpart_present(data_dir) -> None:
    found = paper.counterparts()
    assert found and paper.PAPER_REFERENCE not in found and set(found) <= set(datasets.alpaca_models())
    record, line = paper.paper_rse_record(n_prompts=4, seed=1, content=False)
    assert record is not None and line.startswith("Spearman rank correlation, paper vs ours")
    measured = {r["test_model"] for r in record["measured"]}
    assert measured == set(found)
    ours = [r for r in record["rows"] if r["our_rse"] is not None]
    assert {r["alpaca_model"] for r in ours} == set(found)
    assert all(1.0 <= r["our_rse"] <= 5.0 and r["our_rse_lo"] <= r["our_rse"] <= r["our_rse_hi"] for r in ours)
    n = record["stats"]["n"]
    assert n == sum(r["paper_rse"] is not None for r in ours)
    rho = record["stats"]["spearman_rho"]
    assert (rho is None) == (n < 3) and (rho is None or -1.0 <= rho <= 1.0 and not math.isnan(rho))


def test_ice_x_rse_puts_each_identity_model_at_the_papers_rse(data_dir) -> None:
    rse = datasets.paper_rse_scores().drop_nulls("identity_model")
    model = rse["identity_model"][0]
    rows = paper.ice_x_rse([{"model": model, "lis": 0.25, "lis_lo": 0.2, "lis_hi": 0.3}, {"model": "unknown", "lis": None}])
    [point] = [r for r in rows if r["rse_source"] == "paper"]
    assert point["model"] == model and point["lis"] == 0.25 and point["lis_ci"] == [0.2, 0.3]
    assert point["rse"] == rse["average"][0]  # the paper's own number, not a measured one
