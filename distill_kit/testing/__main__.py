"""``python -m distill_kit.testing``: see :mod:`distill_kit.testing.cli`."""

from distill_kit.testing.cli import main

main()
