"""glmlab's Hydra plugins: the launchers ``submitit_slurm_async`` (submit a sweep and
return) and ``glmlab_local`` (a local sweep's runs side by side, as many as the cores
allow), and the sweeper ``glmlab_basic`` (Hydra's basic one, validating faster).

Hydra loads launchers only from the ``hydra_plugins`` namespace package; glmlab puts this
directory's parent on ``sys.path`` (:func:`glmlab.cluster.launcher.install`) so that the
plugin is found however glmlab is installed. The work is in :mod:`glmlab.cluster.submit`,
:mod:`glmlab.cluster.local` and :mod:`glmlab.cluster.validate`.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import DictConfig


class SubmititSlurmAsyncLauncher(SlurmLauncher):
    """hydra-submitit-launcher's Slurm launcher that returns once Slurm accepted the jobs."""

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from glmlab.cluster.submit import submit_sweep

        return submit_sweep(self, job_overrides, initial_job_idx)


class LocalParallelLauncher(Launcher):
    """glmlab's local launcher: the runs side by side in worker processes glmlab starts
    and watches, as many at once as the cores allow; one at a time, in this process."""

    def __init__(self, n_jobs: int | None = None) -> None:
        from glmlab.cluster.local import check_n_jobs

        try:
            check_n_jobs(n_jobs)  # before the sweep writes anything
        except ValueError as exc:
            raise SystemExit(f"glmlab: config error: {exc}") from None
        self.n_jobs = n_jobs
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from glmlab.cluster.local import launch

        return launch(self, job_overrides, initial_job_idx)


class RepresentativeSweeper(BasicSweeper):
    """Hydra's basic sweeper, composing one job's config of each kind before launching
    and checking the other jobs' values on it (:mod:`glmlab.cluster.validate`), and adding
    the A/A control arm's jobs when ``report.control`` is set (:mod:`glmlab.cluster.control`)."""

    def get_job_batch(self) -> Sequence[Sequence[str]]:
        from glmlab.cluster.control import control_jobs

        batch = list(super().get_job_batch())
        return batch + control_jobs(batch, self.config)

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        from glmlab.cluster.validate import check_batch

        loader = self.hydra_context.config_loader
        check_batch(
            batch,
            loader.repository.group_exists,
            lambda overrides: loader.load_sweep_config(self.config, list(overrides)),
        )
