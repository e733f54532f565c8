"""``python -m glmlab.plugins [--json]``: list every registered plugin (``glmlab plugins``)."""

import sys

from glmlab.cli.main import main

sys.exit(main(["plugins", *sys.argv[1:]]))
