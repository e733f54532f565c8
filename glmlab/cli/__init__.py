"""The commands: ``python -m glmlab`` (the Hydra app and its help) and the ``glmlab``
console script (inspect, infill, report, cluster tools)."""
