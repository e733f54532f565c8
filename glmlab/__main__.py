"""``python -m glmlab [overrides] [-m]``: train one config, or sweep with ``-m``
(``--help`` explains the app and lists the experiments; ``--version``)."""

from glmlab.cli_help import main_with_prepared_argv

if __name__ == "__main__":
    main_with_prepared_argv()
