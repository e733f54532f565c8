"""``python -m glmlab [overrides] [-m]``: train one config, or sweep with ``-m``
(``--help`` explains the app and lists the experiments; ``--version``).

Exit status: 0 when the run completed (or was stopped on purpose), or every run of the
sweep completed or diverged; 1 otherwise (a sweep says how many of each on its last
line); 130 on Ctrl-C (after checkpointing the current step when training)."""

import sys

from glmlab.cli.help import main_with_prepared_argv

if __name__ == "__main__":
    try:
        main_with_prepared_argv()
    except KeyboardInterrupt:
        print("glmlab: interrupted (Ctrl-C); rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    from glmlab.cli.app import exit_code

    sys.exit(exit_code())
