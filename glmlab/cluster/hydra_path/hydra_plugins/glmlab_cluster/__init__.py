"""glmlab's Hydra launcher plugin ``submitit_slurm_async``: submit a sweep and return.

Hydra loads launchers only from the ``hydra_plugins`` namespace package; glmlab puts this
directory's parent on ``sys.path`` (:func:`glmlab.cluster.launcher.install`) so that the
plugin is found however glmlab is installed. The work is in :mod:`glmlab.cluster.submit`.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher


class SubmititSlurmAsyncLauncher(SlurmLauncher):
    """hydra-submitit-launcher's Slurm launcher that returns once Slurm accepted the jobs."""

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from glmlab.cluster.submit import submit_sweep

        return submit_sweep(self, job_overrides, initial_job_idx)
