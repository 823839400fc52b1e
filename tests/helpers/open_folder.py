"""Build data folders for tests: symlinks into ../shared/data plus synthetic extras (never copies into the repo)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Iterable

# registered files the open folder lacks
OMITTED = ("identity/responses/qwen2.5-72b.jsonl.gz", "alpaca_eval/outputs/guanaco-7b.json.gz")
# curated files the open folder replaces with its own version
REPLACED = ("alpaca_eval/lineage_extended.csv", "identity/models_extended.csv")
USER_MODEL = "my-model"


def link_tree(src: Path, dst: Path, skip: Iterable[str] = ()) -> None:
    """Symlink every file of ``src`` into ``dst`` (same layout), except the relative paths in ``skip``."""
    skip = set(skip)
    for f in sorted(src.rglob("*")):
        rel = f.relative_to(src).as_posix()
        if f.is_file() and rel not in skip:
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).symlink_to(f)


def jsonl_rows(path: Path, n: int | None = None) -> list[dict]:
    rows = [json.loads(x) for x in gzip.decompress(path.read_bytes()).decode().splitlines() if x.strip()]
    return rows[:n] if n else rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def csv_text(rows: list[dict], columns: list[str]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


def build_open_folder(shared: Path, root: Path) -> Path:
    """../shared/data minus two registered files, plus an unregistered model (identity and AlpacaEval answers)
    and the folder's own curated lineage and model families (which differ from the project's)."""
    link_tree(shared, root, skip=(*OMITTED, *REPLACED))
    # an unregistered identity model: 200 real jailbreak answers under a new name, plain (not gzipped) JSONL
    write_jsonl(root / f"identity/responses/{USER_MODEL}.jsonl", jsonl_rows(shared / "identity/responses/phi-4.jsonl.gz", 200))
    # ... and its AlpacaEval answers (alpaca-7b's, renamed)
    rows = json.loads(gzip.decompress((shared / "alpaca_eval/outputs/alpaca-7b.json.gz").read_bytes()))
    (root / f"alpaca_eval/outputs/{USER_MODEL}.json").write_text(
        json.dumps([{**r, "generator": USER_MODEL} for r in rows]), encoding="utf-8")
    # the folder's own lineage: the user's model as a student of text_davinci_003, guanaco-7b (absent) dropped
    lin = [r for r in csv.DictReader((shared / "alpaca_eval/lineage_extended.csv").open()) if r["model"] != "guanaco-7b"]
    cols = list(lin[0])
    lin.append({"model": USER_MODEL, "role": "student", "family": "llama", "line": "", "teacher": "text_davinci_003",
                "training_data_note": "synthetic test model (alpaca-7b's answers)"})
    (root / "alpaca_eval/lineage_extended.csv").write_text(csv_text(lin, cols), encoding="utf-8")
    fam = list(csv.DictReader((shared / "identity/models_extended.csv").open()))
    fam.append({"model": USER_MODEL, "family": "phi", "upstream_file": ""})
    (root / "identity/models_extended.csv").write_text(csv_text(fam, ["model", "family", "upstream_file"]), encoding="utf-8")
    return root


def build_fourteen_model_folder(shared: Path, root: Path, n: int = 60) -> list[str]:
    """A folder holding all 14 identity models of ``models_extended.csv`` (n answers each, unregistered plain
    files built from the real answers in ../shared/data), with strict files in the paper's quirky names."""
    models = [r["model"] for r in csv.DictReader((shared / "identity/models_extended.csv").open())]
    sources = sorted((shared / "identity/responses").glob("*.jsonl.gz"))
    link_tree(shared, root, skip=[p.relative_to(shared).as_posix() for p in shared.rglob("*")
                                  if p.relative_to(shared).as_posix().startswith(("identity/responses/", "identity/strict_positives/"))])
    (root / "identity/strict_positives").mkdir(parents=True, exist_ok=True)
    for i, model in enumerate(models):
        rows = jsonl_rows(sources[i % len(sources)], None)[(i // len(sources)) * n:][:n]
        write_jsonl(root / f"identity/responses/{model}.jsonl", rows)
        positives = [r for r in rows if r.get("eval_results")]
        name = {"gemini-2.0-flash-exp": "GPT_gemini-2.0-flash_0.035", "qwen2.5-14b-instruct": "qwen2.5-14b-instruct_0.0",
                "qwen2.5-72b-instruct": "GPT_qwen2.5-72b-instruct_0.00"}.get(model, f"GPT_{model}_0.1")
        keep = [] if model == "qwen2.5-14b-instruct" else positives if model == "qwen2.5-72b-instruct" else positives[::2]
        (root / f"identity/strict_positives/{name}.csv").write_text(csv_text(
            [{"jailbreak_prompt": r["jailbreak_prompt"], "query": r["query"], "target_responses": repr(r["target_responses"]),
              "eval_results": "True", "re_judge": "True"} for r in keep],
            ["jailbreak_prompt", "query", "target_responses", "eval_results", "re_judge"]), encoding="utf-8")
    (root / "identity/strict_positives/GPT_gemini-1.5-pro_0.029.csv").write_text(
        "jailbreak_prompt,query,target_responses,eval_results,re_judge\n", encoding="utf-8")
    return models
