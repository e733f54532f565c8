"""lm-evaluation-harness tasks as verdict metrics (docs/HARNESS.md).

- :mod:`glmlab.harness.lm`: the ``glmlab`` model for lm-eval (imports ``lm_eval``);
- :mod:`glmlab.harness.readers`: how each model family reads a request;
- :mod:`glmlab.harness.scoring`: batched scoring and greedy generation;
- :mod:`glmlab.harness.loading`: a run's model from its directory;
- :mod:`glmlab.harness.items`: lm-eval results as per-item scores and metrics;
- :mod:`glmlab.harness.run`: checking tasks, scoring a run, ``harness_items.json``.

Only :mod:`glmlab.harness.lm` and the scoring in :mod:`glmlab.harness.run` need the
optional ``lm-eval`` package (``pip install "glmlab[harness]"``).
"""
