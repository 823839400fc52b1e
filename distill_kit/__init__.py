"""distill-kit: distillation quantification for LLMs (ICE identity scores, RSE similarity, lineage).

Importing the package in a Jupyter kernel makes Altair charts render offline (``distill_kit.display``);
every notebook imports it, so this is the one place that choice is made.
"""

from distill_kit.display import setup_kernel as _setup_kernel

_setup_kernel()
del _setup_kernel
