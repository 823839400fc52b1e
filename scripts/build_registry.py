"""Regenerate the package's data registry and curated-metadata transcription from a data folder.

    python scripts/build_registry.py ../shared/data

* ``distill_kit/registry.csv``: every upstream file of ``upstream_manifest.csv`` (path as laid out in a
  data folder, sha256 and size of the upstream bytes, raw URL at a pinned commit), sorted by path.
* ``distill_kit/data/published_meta.yaml``: the project's transcription of the folder's curated
  metadata (identity facts, model families, the paper's tables, AlpacaEval lineage), used when a data
  folder does not hold them. Curated files are not checksummed: a folder may carry its own.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from distill_kit.datafetch import REGISTRY_FILE  # noqa: E402
from distill_kit.datasets import CURATED, TRANSCRIPTION  # noqa: E402

ABOUT = ("Curated metadata used when a data folder does not hold it: identity facts per model family (the paper's "
         '"Fact 1"), the family of each of the paper\'s 14 identity models, the paper\'s published Loose/Strict Identity '
         "Scores and RSE table (Lee et al. 2025), and the documented training lineage of the AlpacaEval models "
         "(lineage.csv and its superset lineage_extended.csv). Regenerate with scripts/build_registry.py; a data "
         "folder's own copy takes precedence.")


def main(folder: str) -> int:
    root = Path(folder)
    with (root / "upstream_manifest.csv").open(encoding="utf-8") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: r["path"])
    out = io.StringIO()
    w = csv.DictWriter(out, ["path", "sha256", "size", "url"], lineterminator="\n")
    w.writeheader()
    w.writerows({k: r[k] for k in ("path", "sha256", "size", "url")} for r in rows)
    REGISTRY_FILE.write_text(out.getvalue(), encoding="utf-8")
    meta: dict = {"about": ABOUT}
    for path, key in CURATED.items():
        text = (root / path).read_text(encoding="utf-8-sig")
        meta[key] = json.loads(text) if path.endswith(".json") else list(csv.DictReader(io.StringIO(text)))
    TRANSCRIPTION.parent.mkdir(parents=True, exist_ok=True)
    TRANSCRIPTION.write_text(yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    print(f"{REGISTRY_FILE.name}: {len(rows)} files; {TRANSCRIPTION.name}: {len(CURATED)} curated tables")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT.parent / "shared" / "data")))
