"""`distill-kit prepare`: build once, at set-up, the offline models every later run and notebook reuses.

Why a step of its own: three things a first run would otherwise stop for are models, not results -- the
offline identity judge (fitted on the paper's GPT-4o-mini labels), the calibration pool of the corrected
LIS/SIS (the judge fitted once without each published model, so every model's scores come from a judge that
never saw it), and the ONNX export of the bundled sentence-embedding model. Each is cached under the project's
cache folder by the same functions the notebooks call, so a run finds them ready; what is cached already costs
nothing here. `make setup` runs this, so the demo and JupyterLab start without minutes of fitting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Prepared:
    """One prepared model: what it is and the seconds it took (0 when it was cached)."""

    name: str
    seconds: float


def _identity_judge() -> None:
    from distill_kit.ice.judges import default_offline_judge

    default_offline_judge()


def _calibration_pool() -> None:
    from distill_kit.ice import calibration

    calibration.pool("offline")
    calibration.pool_choices("offline")  # the label-free choices made on that pool


def _embedding_model() -> None:
    from distill_kit.text import embed

    if embed.onnx_available():
        embed.onnx_model_dir()
    else:
        embed.default_model_path()  # torch backend: unzip the bundled model only


#: What `prepare` builds, in order: (name, builder).
STEPS: tuple[tuple[str, Callable[[], None]], ...] = (
    ("offline identity judge (fitted on the paper's labelled answers)", _identity_judge),
    ("calibration pool of the corrected identity scores (the judge without each published model)", _calibration_pool),
    ("sentence-embedding model (the bundled MiniLM, exported to ONNX)", _embedding_model),
)


def prepare(say: Callable[[str], None] = print) -> list[Prepared]:
    """Build every :data:`STEPS` item not yet cached, saying what happens; returns each one's time."""
    done = []
    for name, build in STEPS:
        say(f"preparing {name} ...")
        t0 = time.perf_counter()
        build()
        secs = time.perf_counter() - t0
        say(f"  ready ({secs:.0f} s)")
        done.append(Prepared(name, secs))
    return done
