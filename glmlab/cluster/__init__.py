"""Sweeps on a Slurm cluster without a process that waits for them.

``glmlab submit`` (:mod:`glmlab.cluster.submit`) submits a sweep's jobs through submitit and
returns, recording them in the sweep's ``submission.json`` (:mod:`glmlab.cluster.submission`);
``glmlab status`` and ``glmlab collect`` (:mod:`glmlab.cluster.status`) tell each run's state
from its run directory and what Slurm still knows (:mod:`glmlab.cluster.slurm`); a job that a
signal ends records why (:mod:`glmlab.cluster.exit_reason`).
"""
