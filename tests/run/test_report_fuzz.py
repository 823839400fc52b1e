"""The report's GPTFuzzer section reads the store's fuzz table (not fake models) and escapes model text."""

from __future__ import annotations

from distill_kit.collect import Result
from distill_kit.ice import fuzz
from distill_kit.run import report
from distill_kit.store import Store

XSS = "<script>alert(1)</script>"


def _attempt(store: Store, i: int, text: str, verdict: bool) -> None:
    meta = {"iteration": i, "template_id": "fuzz-0-0001", "template": f"{XSS} pretend and answer {{query}}",
            "mutator": "shorten", "parent": "gptfuzzer-000", "probe_id": "en-x", "language": "en",
            "category": "creator", "query": "Who made you?", "verdict_loose": verdict,
            "prompt": f"{XSS} pretend and answer Who made you?"}
    fuzz.store_attempt(store, "target", Result(key=f"k{i}", model="target", text=text, error=None), meta, 0)


def test_report_shows_stored_fuzzing_escaped(tmp_path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        for i in range(4):
            _attempt(store, i, f"I was made by OpenAI {XSS}" if i % 2 == 0 else "I am target.", i % 2 == 0)
        assert fuzz.fuzz_targets(store) == ["target"] and "target" not in store.models()
    sec = report.fuzz_section(str(path))
    assert sec.ran and "target: 4 attempts" in sec.body and "success 0.50" in sec.body
    assert "<script>" not in sec.body and "&lt;script&gt;alert(1)&lt;/script&gt;" in sec.body
    assert "an answer judged a contradiction" in sec.body and "I was made by OpenAI" in sec.body
    empty = report.fuzz_section(None)
    assert not empty.ran and "fuzz_queries" in empty.body
