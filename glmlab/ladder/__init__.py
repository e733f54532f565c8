"""Verdicts across scale: a ladder of model sizes in one sweep, a tuned learning rate per
variant and size, fitted power laws, predictions checked on a held-out rung and a verdict
per metric (docs/LADDERS.md).

- :mod:`~glmlab.ladder.compute`: non-embedding parameters, training tokens and FLOPs (the
  one place they are counted; every run's result.json records them as ``compute``);
- :mod:`~glmlab.ladder.spec`: the sweep's plan from the ladder file's checked settings;
- :mod:`~glmlab.ladder.lr`: each arm's learning rate from its grid, by validation loss;
- :mod:`~glmlab.ladder.powerlaw`: saturating power laws and whether the points determine
  them; :mod:`~glmlab.ladder.fit`: crossings and the verdict across scale;
- :mod:`~glmlab.ladder.predict`: t intervals, the form the points support, refit counts,
  the compute-equivalent multiplier; :mod:`~glmlab.ladder.link`: accuracy through loss;
- :mod:`~glmlab.ladder.holdout`: the prediction check on a held-out rung;
- :mod:`~glmlab.ladder.roles`: which runs count (tuning, verdict, superseded);
- :mod:`~glmlab.ladder.sweep`: the two phases the Hydra sweeper ``glmlab_ladder`` runs
  (:mod:`~glmlab.ladder.plugin` registers it).

The report's ladder section, plot and table are :mod:`glmlab.report.ladder` and its
siblings (the report imports them; nothing here imports the report, so no import cycle).
"""
