"""``python -m glmlab [overrides] [-m]``: train one config, or sweep with ``-m``
(``--help`` explains the app and lists the experiments; ``--version``).

Exit status: 0 when the run completed (or was stopped on purpose), or every run of the
sweep completed or diverged; 1 otherwise (a sweep says how many of each on its last
line); 130 on Ctrl-C, 143 on SIGTERM (after checkpointing the current step of every run
that is training; a sweep then writes the report of what finished)."""

import sys

from glmlab.cli.help import main_with_prepared_argv

if __name__ == "__main__":
    try:
        main_with_prepared_argv()
    except KeyboardInterrupt as exc:
        # A sweep writes the report of what finished and says what a rerun does per run.
        from glmlab.cli.callback import end_interrupted

        sys.exit(end_interrupted(exc))
    from glmlab.cli.app import exit_code

    sys.exit(exit_code())
