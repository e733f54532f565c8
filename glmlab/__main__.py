"""``python -m glmlab [overrides] [-m]``: train one config, or sweep with ``-m``."""

from glmlab.app import main

if __name__ == "__main__":
    main()
