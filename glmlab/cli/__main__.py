"""``python -m glmlab.cli ...``: the ``glmlab`` console script (for an environment without
its entry point on PATH)."""

import sys

from glmlab.cli.main import main

sys.exit(main())
