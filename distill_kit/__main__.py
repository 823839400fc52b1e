"""`python -m distill_kit run CONFIG`: same as the `distill-kit` console script."""

import sys

from distill_kit.run.cli import main

sys.exit(main())
