"""Handmade answers for the RSE tests: three bulleted answers, their copy and a near copy, prose; a fast
stand-in encoder for sentence-transformers."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import polars as pl

BULLETS = {
    "p1": "Here are some tips:\n\n- Sleep eight hours.\n- Drink water.\n- Walk daily.\n\nI hope this helps!",
    "p2": "Here are the steps:\n\n1. Boil water.\n2. Add pasta.\n3. Cook ten minutes.\n\nEnjoy!",
    "p3": "Here are some facts:\n\n- Paris is the capital of France.\n- It has the Eiffel Tower.\n\nLet me know if you want more!",
}
PROSE = {
    "p1": "Getting enough sleep, drinking water and walking are what matter most for health, in my experience as a long-time runner and coach.",
    "p2": "Pasta is simple: you boil the water, you add the pasta and then you cook it for about ten minutes until it is soft.",
    "p3": "Paris, the capital of France, is famous for many monuments, and the Eiffel Tower is certainly the best known of them all.",
}
VARIANT = {k: v.replace("Here are", "Below are").replace("daily", "every day") for k, v in BULLETS.items()}


def bag_of_words(texts: list[str]) -> np.ndarray:
    """Fast stand-in for sentence-transformers: hashed bag of words, L2-normalised."""
    out = np.zeros((len(texts), 64), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in re.findall(r"[a-z]+", t.lower()):
            out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % 64] += 1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)


def toy_aligned(without: tuple[str, str] | None = None) -> pl.DataFrame:
    """Aligned answers (``align_responses`` output) of ref, copy (= ref), variant and prose to p1-p3,
    leaving out the (model, prompt_id) ``without``."""
    rows = [{"prompt_set": "toy", "prompt_id": pid, "prompt": pid, "model": model, "text": text}
            for model, answers in (("ref", BULLETS), ("copy", BULLETS), ("variant", VARIANT), ("prose", PROSE))
            for pid, text in answers.items() if (model, pid) != without]
    return pl.DataFrame(rows)
