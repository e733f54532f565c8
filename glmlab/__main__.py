"""``python -m glmlab [overrides] [-m]``: train one config, or sweep with ``-m``.

Exit status: 0 when the run completed (or was stopped on purpose), or every run of the
sweep completed or diverged; 1 otherwise (a sweep says how many of each on its last
line); 130 on Ctrl-C (after checkpointing the current step when training)."""

import sys

from glmlab.app import exit_code, main

if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("glmlab: interrupted (Ctrl-C); rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    sys.exit(exit_code())
