"""glmlab's Hydra sweeper ``glmlab_ladder``: an experiment's variants x seeds over a
ladder of model sizes, each arm at its own tuned learning rate (docs/LADDERS.md).

Hydra loads sweepers only from the ``hydra_plugins`` namespace package; the ladder files
(conf/ladder/*.yaml) select it. The work is in :mod:`glmlab.ladder.sweep`.
"""

from __future__ import annotations

from typing import Any

from hydra_plugins.glmlab_cluster import RepresentativeSweeper


class LadderSweeper(RepresentativeSweeper):
    """Phase 1: variant x rung x lr grid on the tuning seed; phase 2: variant x rung x
    seed at each arm's chosen lr. Configs are composed one per kind of job."""

    def __init__(
        self, max_batch_size: int | None = None, params: Any = None, ladder: Any = None
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.ladder = ladder

    def sweep(self, arguments: list[str]) -> Any:
        from glmlab.ladder.sweep import sweep_ladder

        return sweep_ladder(self, arguments)
