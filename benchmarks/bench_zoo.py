"""The paper's protocol end to end, offline: configs/runs/paper.yaml (steps 02-06) against the API zoo, per step
wall time, CPU time, peak memory, requests and answers stored, at one or several sizes.

Every model call goes through the real openai / anthropic SDKs over loopback HTTP to distill_kit.testing,
which answers as the paper's published models and, as the GPT-4o-mini judge, with the published labels.
Each size runs from an empty run directory (its own store) and, unless ``--warm-cache``, an empty embedding
cache (the exported ONNX model and every other cache entry are shared, so nothing but the vectors is
recomputed): what a user waits for after the API answers have arrived, the first time.

``--scales 1/8,1/4,1/2,1`` runs the protocol at those fractions of its prompts per set (every size
parameter the config sets, or whose 0 means "all", is multiplied: probes per language, Arena-Hard prompts,
answers per published model, live probes, judged prompts, 05's mapped prompts; templates and the rest stay)
and prints a scaling table. ``--batch`` sends the API models through the batch APIs; ``--no-batch-api``
makes the zoo answer 404 on them (a server without batch endpoints).

    python benchmarks/bench_zoo.py [--scales 1] [--batch] [--no-batch-api] [--warm-cache] [--runs-dir DIR]
                                   [--attribution-prompts N]

``--attribution-prompts N`` gives 05's teacher attribution and who-wrote-this classifier N shared prompts instead
of the config's all (``attribution_sample_size: 0``, about 220 CPU s at any scale, docs/scale.md): the slow
test's slice, whose assertions are about the run, not the attribution's accuracy.

Measured per step (the pipeline's own "[i/n] step: running/ok" lines delimit them): wall seconds; CPU
seconds of this process (the runner and the zoo's server thread) plus its reaped children (the notebook
kernel); peak RSS of this process and all its descendants summed (sampled every 0.2 s; shared pages
count twice, so it errs high); requests the zoo answered (chat plus batch); answers the run's store
gained; and per size the texts embedded (with an empty cache). Prints a table per size, the reproduced LIS / SIS of every published model against the scores
of the published labels (when 03 ran), and one JSON line with every figure, including the load average
at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import closing, suppress
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from distill_kit import datasets
from distill_kit.config import read_yaml
from distill_kit.paths import PROJECT_ROOT, REPORT_FILE
from distill_kit.run import pipeline, plan
from distill_kit.testing import ZooConfig, ZooServer

_STEP_LINE = re.compile(r"\[\d+/\d+\] (\S+): (running|ok)")
#: step number -> the parameters that size it (each one's 0 means "all")
SIZE_PARAMS: dict[str, tuple[str, ...]] = {
    "02": ("probe_sample_size", "sample_size"),
    "03": ("sample_size", "live_probes"),
    "04": ("sample_size", "judge_prompts"),
    "05": ("sample_size",),
}


def label_conflicts() -> dict[str, int]:
    """Answers per model whose judge input (fact + text) also appears with the other published label:
    one request, one verdict, so no judge can reproduce both labels."""
    frame = datasets.identity_responses()
    facts = datasets.identity_facts()
    labels: dict[tuple[str, str], set[bool]] = {}
    for fam, resp, lab in frame.select("family", "response", "loose_label").iter_rows():
        labels.setdefault((facts.get(fam or "", ""), (resp or "").strip()), set()).add(bool(lab))
    out: Counter = Counter()
    for model, fam, resp in frame.select("model", "family", "response").iter_rows():
        if len(labels[(facts.get(fam or "", ""), (resp or "").strip())]) > 1:
            out[model] += 1
    return dict(out)


def full_sizes(params: dict[str, dict[str, Any]]) -> dict[tuple[str, str], int]:
    """What each size parameter's 0 ("all") means on this data folder: probes per language, prompts per
    set, identity answers per published model."""
    from distill_kit.ice import probes

    per_lang = Counter(p.language for p in probes.load_probes())
    out: dict[tuple[str, str], int] = {}
    for step, keys in SIZE_PARAMS.items():
        p = params.get(step, {})
        for key in keys:
            if key == "probe_sample_size":
                out[(step, key)] = max(per_lang.values())
            elif step == "03" and key == "sample_size":
                out[(step, key)] = int(datasets.identity_responses().group_by("model").len()["len"].max())
            elif key == "sample_size" and p.get("prompt_sets"):
                out[(step, key)] = max(datasets.prompt_set(s).height for s in p["prompt_sets"])
    return out


def scaled_config(raw: dict[str, Any], scale: Fraction) -> dict[str, Any]:
    """``raw`` (a run config as read from YAML) with every size parameter multiplied by ``scale`` (>= 1 each)."""
    if scale >= 1:
        return raw
    params = {s["notebook"]: dict(s.get("parameters") or {}) for s in raw["steps"]}
    full = full_sizes(params)
    steps = []
    for s in raw["steps"]:
        p = dict(s.get("parameters") or {})
        for key in SIZE_PARAMS.get(s["notebook"], ()):
            if key not in p:
                continue
            n = p[key] or full.get((s["notebook"], key), 0)
            if n:
                p[key] = max(1, round(n * scale))
        steps.append({**s, "parameters": p} if p else dict(s))
    return {**raw, "steps": steps}


def cold_cache(real: Path) -> Path:
    """A cache folder sharing every entry of ``real`` except the embedding vectors (their folder holds only
    the shared exported models), so a run embeds from scratch without re-exporting or re-preparing."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-zoo-cache-"))
    for entry in real.iterdir() if real.is_dir() else []:
        if entry.name != "embeddings":
            (tmp / entry.name).symlink_to(entry)
    (tmp / "embeddings").mkdir()
    models = real / "embeddings" / "models"
    models.mkdir(parents=True, exist_ok=True)
    (tmp / "embeddings" / "models").symlink_to(models)
    return tmp


class TreeMemory:
    """Peak summed RSS of this process and its descendants, sampled in a thread; ``reset`` starts a window."""

    def __init__(self, interval: float = 0.2) -> None:
        import psutil

        self._me = psutil.Process()
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def _sample(self) -> int:
        import psutil

        total = 0
        for p in [self._me, *self._me.children(recursive=True)]:
            with suppress(psutil.Error):  # a child that ended between listing and reading
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._sample())

    def reset(self) -> None:
        self.peak = self._sample()

    def __enter__(self) -> TreeMemory:  # noqa: PYI034 - not subclassed
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _vectors(db: Path) -> int:
    """Texts the run embedded (the rows of a cache that started empty)."""
    if not db.exists():
        return 0
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        return int(con.execute("SELECT COUNT(*) FROM emb").fetchone()[0])


def _answers(store: Path) -> int:
    if not store.exists():
        return 0
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30)) as con:
        return int(con.execute("SELECT COUNT(*) FROM responses WHERE status = 'ok'").fetchone()[0])


@dataclass
class StepMeter:
    """Per-step figures, cut at the pipeline's progress lines."""

    zoo: ZooServer
    memory: TreeMemory
    store: Path
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    _open: tuple[str, float, float, int, int] | None = None

    def _requests(self) -> int:
        st = self.zoo.stats
        return st.chat + st.batch_requests

    def log(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)
        m = _STEP_LINE.search(msg)
        if not m:
            return
        if m.group(2) == "running":
            self.memory.reset()
            self._open = (m.group(1), time.perf_counter(), _cpu(), self._requests(), _answers(self.store))
        else:
            self.close("ok")

    def close(self, status: str) -> None:
        if self._open is None:
            return
        name, t0, c0, r0, a0 = self._open
        self.steps[name] = {"status": status, "wall_s": round(time.perf_counter() - t0, 1),
                            "cpu_s": round(_cpu() - c0, 1), "peak_rss_mb": round(self.memory.peak / 2**20),
                            "requests": self._requests() - r0, "answers": _answers(self.store) - a0}
        self._open = None


def run_scale(raw: dict[str, Any], scale: Fraction, runs_dir: Path, zoo_cfg: ZooConfig, warm: bool) -> dict[str, Any]:
    """One run of ``raw`` at ``scale`` from an empty run directory; returns its figures."""
    cfg = plan.RunConfig.model_validate(scaled_config(raw, scale))
    real_cache = os.environ.get("DISTILL_KIT_CACHE_DIR")
    cold = None
    if not warm:
        from distill_kit.paths import cache_dir

        cold = cold_cache(Path(cache_dir()))
        os.environ["DISTILL_KIT_CACHE_DIR"] = str(cold)
    load_start = os.getloadavg()
    out: dict[str, Any] = {"scale": str(scale), "sizes": {s.notebook: {k: s.parameters.get(k) for k in SIZE_PARAMS.get(
        s.notebook, ()) if k in s.parameters} for s in cfg.steps}}
    try:
        with ZooServer(zoo_cfg) as zoo, TreeMemory() as memory:
            os.environ["DISTILL_KIT_ZOO_URL"] = zoo.root_url
            os.environ.setdefault("DISTILL_KIT_ZOO_KEY", "zoo")
            run_dir = Path(runs_dir).resolve() / cfg.run_id()
            meter = StepMeter(zoo, memory, run_dir / "store.sqlite")
            t0 = time.perf_counter()
            error = None
            try:
                result = pipeline.run_pipeline(cfg, runs_dir, log=meter.log)
            except pipeline.StepFailed as exc:
                meter.close("failed")
                error, result = str(exc), None
            out["total_wall_s"] = round(time.perf_counter() - t0, 1)
            stats = zoo.stats
            out.update(chat_requests=stats.chat, batch_requests=stats.batch_requests,
                       batches_created=stats.batches_created, max_in_flight=stats.max_in_flight)
    finally:
        if cold is not None:
            out["vectors_embedded"] = _vectors(cold / "embeddings" / "embeddings.sqlite")
            shutil.rmtree(cold)  # the vectors only: the shared entries are symlinks, removed as links
            if real_cache is None:
                os.environ.pop("DISTILL_KIT_CACHE_DIR", None)
            else:
                os.environ["DISTILL_KIT_CACHE_DIR"] = real_cache
    report = run_dir / REPORT_FILE
    out.update(steps=meter.steps, error=error, run_dir=str(run_dir),
               peak_rss_mb=max((s["peak_rss_mb"] for s in meter.steps.values()), default=0),
               total_cpu_s=round(sum(s["cpu_s"] for s in meter.steps.values()), 1),
               answers=_answers(run_dir / "store.sqlite"),
               report_bytes=report.stat().st_size if report.is_file() else None,
               load_start=[round(x, 2) for x in load_start], load_end=[round(x, 2) for x in os.getloadavg()])
    if result is not None:
        out["lis_sis"] = lis_sis_checks(json.loads(result.summary.read_text()))
    return out


def lis_sis_checks(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = summary["steps"].get("03-identity-scores", {}).get("replay", [])
    conflicts = label_conflicts() if rows else {}
    checks = []
    for r in rows:
        eq = abs(r["lis"] - r["lis_labels"]) < 1e-12 and abs(r["sis"] - r["sis_labels"]) < 1e-12
        checks.append({"model": r["model"], "n": r["n"], "lis": r["lis"], "lis_labels": r["lis_labels"],
                       "sis": r["sis"], "sis_labels": r["sis_labels"], "equal": eq,
                       "label_conflicts": conflicts.get(r["model"], 0)})
    return checks


def print_run(res: dict[str, Any]) -> None:
    print(f"\nscale {res['scale']}: {res['total_wall_s']:.0f} s wall, {res['total_cpu_s']:.0f} s CPU, peak RSS "
          f"{res['peak_rss_mb']} MB, {res['chat_requests']} chat requests, {res['batches_created']} batches "
          f"({res['batch_requests']} requests), {res['answers']} answers stored, report "
          f"{(res['report_bytes'] or 0) / 1e6:.1f} MB, {res.get('vectors_embedded', '-')} texts embedded; load {res['load_start'][0]:.1f} -> {res['load_end'][0]:.1f}")
    print(f"  sizes: {res['sizes']}")
    print(f"  {'step':<28}{'status':>8}{'wall s':>9}{'CPU s':>9}{'RSS MB':>8}{'requests':>10}{'answers':>9}")
    for name, s in res["steps"].items():
        print(f"  {name:<28}{s['status']:>8}{s['wall_s']:>9.1f}{s['cpu_s']:>9.1f}{s['peak_rss_mb']:>8}"
              f"{s['requests']:>10}{s['answers']:>9}")
    if res.get("error"):
        print(f"  FAILED: {res['error']}")
    for c in res.get("lis_sis", []):
        note = "" if c["equal"] else f"  ({c['label_conflicts']} answers share a judge input with the other label)"
        print(f"  {c['model']:<28} n {c['n']:>5} LIS {c['lis']:.3f}/{c['lis_labels']:.3f} "
              f"SIS {c['sis']:.3f}/{c['sis_labels']:.3f} {'equal' if c['equal'] else 'NOT equal'}{note}")


def print_scaling(results: list[dict[str, Any]]) -> None:
    names = list(dict.fromkeys(n for r in results for n in r["steps"]))
    print("\nscaling (CPU s per step; wall in brackets)")
    print(f"  {'scale':<7}" + "".join(f"{n[:2]:>16}" for n in names) + f"{'total':>16}{'answers':>9}{'RSS MB':>8}")
    for r in results:
        cells = "".join(f"{r['steps'].get(n, {}).get('cpu_s', float('nan')):>8.0f} ({r['steps'].get(n, {}).get('wall_s', float('nan')):>4.0f})"
                        for n in names)
        print(f"  {r['scale']:<7}{cells}{r['total_cpu_s']:>8.0f} ({r['total_wall_s']:>5.0f}){r['answers']:>9}{r['peak_rss_mb']:>8}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scales", default="1", help="comma-separated fractions of the paper's size, e.g. 1/8,1/4,1/2,1")
    ap.add_argument("--batch", action="store_true", help="API models through the batch APIs")
    ap.add_argument("--no-batch-api", action="store_true", help="the zoo answers 404 on the batch endpoints")
    ap.add_argument("--warm-cache", action="store_true", help="keep the embedding cache (default: start it empty)")
    ap.add_argument("--steps", default="", help="comma-separated step numbers to keep (default: all)")
    ap.add_argument("--runs-dir", default="", help="where the run directories go (default: a temp dir)")
    ap.add_argument("--attribution-prompts", type=int, default=0,
                    help="05's attribution_sample_size, at every scale (default 0: the config's, all shared prompts)")
    args = ap.parse_args()
    try:
        scales = [Fraction(s) for s in args.scales.split(",")]
    except (ValueError, ZeroDivisionError):
        print(f"--scales: fractions such as 1/8,1/2,1, not {args.scales!r}", file=sys.stderr)
        return 2
    if any(not 0 < s <= 1 for s in scales):
        print("--scales: each fraction must be in (0, 1]", file=sys.stderr)
        return 2
    raw = read_yaml(PROJECT_ROOT / "configs" / "runs" / "paper.yaml")
    if args.steps:
        keep = set(args.steps.split(","))
        raw["steps"] = [s for s in raw["steps"] if s["notebook"] in keep]
    if args.attribution_prompts < 0:
        print("--attribution-prompts: a number of prompts (0 means the config's)", file=sys.stderr)
        return 2
    if args.attribution_prompts:
        raw["steps"] = [{**s, "parameters": {**(s.get("parameters") or {}), "attribution_sample_size": args.attribution_prompts}}
                        if s["notebook"] == "05" else s for s in raw["steps"]]
    raw["models_overlay"] = "configs/overlays/zoo.yaml"
    raw["batch"] = args.batch
    zoo_cfg = ZooConfig(batch_api=not args.no_batch_api)
    runs_dir = Path(args.runs_dir or tempfile.mkdtemp(prefix="bench-zoo-"))
    load_start = os.getloadavg()
    results = []
    for scale in scales:
        res = run_scale(raw, scale, runs_dir / f"scale-{str(scale).replace('/', '_')}", zoo_cfg, args.warm_cache)
        print_run(res)
        results.append(res)
    if len(results) > 1:
        print_scaling(results)
    main_run = max(results, key=lambda r: Fraction(r["scale"]))
    print(json.dumps({"benchmark": "paper_on_zoo", "batch": args.batch, "batch_api": not args.no_batch_api,
                      "warm_cache": args.warm_cache, "attribution_prompts": args.attribution_prompts or None,
                      "cpus": os.cpu_count(), "scale": main_run["scale"],
                      "steps": main_run["steps"], "total_wall_s": main_run["total_wall_s"],
                      "total_cpu_s": main_run["total_cpu_s"], "peak_rss_mb": main_run["peak_rss_mb"],
                      "all_ok": all(not r["error"] and all(s["status"] == "ok" for s in r["steps"].values())
                                    for r in results),
                      "load_start": [round(x, 2) for x in load_start],
                      "load_end": [round(x, 2) for x in os.getloadavg()],
                      "runs": results}))
    return 0 if all(not r["error"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
