"""Synthetic reference models with distinct verbal habits, shared by the lineage tests: a student that
echoes one reference's habits has a known teacher, a control with neutral habits has none."""

from __future__ import annotations

import numpy as np
import polars as pl

HABITS = {  # each reference model's verbal habits: opening, middle, closing
    "teacher-a": ("Certainly! Here is a concise overview of {t}:", "- {t} matters because", "I hope this helps!"),
    "teacher-a2": ("Certainly! Here is an overview of {t}:", "- {t} is important because", "Hope this helps!"),
    "ref-b": ("## {t}", "**Key point:** {t} works when", "Let me know if you need more."),
    "ref-b2": ("### About {t}", "**Key idea:** {t} works if", "Let me know if anything is unclear."),
    "ref-c": ("{t}, in short, is", "Consider that {t} depends on", "That is all."),
    "ref-c2": ("In short, {t} is", "Note that {t} depends on", "That's all."),
}
LINES = {"teacher-a": "A", "teacher-a2": "A", "ref-b": "B", "ref-b2": "B", "ref-c": "C", "ref-c2": "C"}
NEUTRAL = ("Here are some thoughts on {t}.", "People say {t} is", "Thanks for asking.")
FILLER = ("alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta")


def habit_answer(habits: tuple[str, ...], topic: str, rng: np.random.Generator, keep: float = 1.0,
                 filler: tuple[str, ...] = FILLER, n_filler: int = 10) -> str:
    """An answer about ``topic`` in the given habits (each kept with probability ``keep``) around filler words."""
    words = " ".join(rng.choice(list(filler), size=n_filler))
    parts = [h.format(t=topic) for h in habits if rng.random() < keep]
    return "\n".join([*parts[:1], words, *parts[1:]])


def habits_frame(student_habits: tuple[str, ...], n_topics: int, seed: int = 0, filler: tuple[str, ...] = FILLER,
                 n_filler: int = 10) -> pl.DataFrame:
    """Answers (model, prompt, text) of every reference, a ``student`` echoing ``student_habits`` (70% of
    them) and a ``control`` in neutral habits, to ``n_topics`` prompts."""
    rng = np.random.default_rng(seed)
    rows = []
    for t in (f"topic{i}" for i in range(n_topics)):
        prompt = f"Explain {t}."
        for m, h in HABITS.items():
            rows.append({"model": m, "prompt": prompt, "text": habit_answer(h, t, rng, 1.0, filler, n_filler)})
        rows.append({"model": "student", "prompt": prompt,
                     "text": habit_answer(student_habits, t, rng, 0.7, filler, n_filler)})
        rows.append({"model": "control", "prompt": prompt, "text": habit_answer(NEUTRAL, t, rng, 1.0, filler, n_filler)})
    return pl.DataFrame(rows)
