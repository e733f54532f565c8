"""Verdicts across scale: a ladder of model sizes in one sweep, a tuned learning rate per
variant and size, fitted power laws and a verdict per metric (docs/LADDERS.md).

- :mod:`~glmlab.ladder.compute`: non-embedding parameters, training tokens and FLOPs (the
  one place they are counted; every run's result.json records them as ``compute``);
- :mod:`~glmlab.ladder.spec`: the ladder file's settings, checked before any run, and the
  sweep's plan;
- :mod:`~glmlab.ladder.lr`: each arm's learning rate from its grid, by validation loss;
- :mod:`~glmlab.ladder.fit`: saturating power laws, seed bootstrap, crossovers, verdicts;
- :mod:`~glmlab.ladder.sweep`: the two phases the Hydra sweeper ``glmlab_ladder`` runs
  (:mod:`~glmlab.ladder.plugin` registers it).

The report's ladder section and plot are :mod:`glmlab.report.ladder` and
:mod:`glmlab.report.ladder_plot` (the report imports them; nothing here imports the report,
so no import cycle).
"""
