"""The tracker contract: a tracker opens a run, records scalars per step, closes it, and
continues the same run when glmlab resumes with the id it returned.

A subclass sets ``name`` (or ``factory``) and ``options`` and implements :meth:`read_back`
with the tracker's own reader (its client, its event files): the contract compares what was
logged with what the library reads back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from glmlab.plugin.base import TrackerBase, TrackerRun
from glmlab.testing.base import PluginContract


class TrackerContract(PluginContract):
    """Contract tests for a ``tracker`` plugin (see the module docstring)."""

    kind: ClassVar[str] = "tracker"

    def read_back(self, run: TrackerRun, run_id: str) -> dict[str, list[tuple[int, float]]]:
        """``{metric: [(step, value), ...]}`` as the tracker's library reads run ``run_id``
        back (one continuous series over the attempts of a resumed run), steps ascending."""
        raise NotImplementedError(f"{type(self).__name__} must implement read_back")

    @pytest.fixture
    def tracker_run(self, tmp_path: Path) -> TrackerRun:
        run_dir = tmp_path / "contract_sweep" / "positional=rope,seed=0"
        run_dir.mkdir(parents=True)
        config: dict[str, Any] = {"model": {"dim": 32, "ffn": "gelu"}, "seed": 0, "tags": [1, 2]}
        return TrackerRun(run_dir, "contract_sweep", run_dir.name, "positional=rope", config)

    def _series(self, run: TrackerRun, run_id: str, metric: str) -> list[tuple[int, float]]:
        got = self.read_back(run, run_id)
        assert metric in got, f"{self.label}: {metric} not read back; got {sorted(got)}"
        return [(int(s), pytest.approx(v, rel=1e-6)) for s, v in got[metric]]

    def test_factory_builds_a_tracker(self) -> None:
        tracker = self.make()
        assert isinstance(tracker, TrackerBase), f"{self.label} lacks start/log/finish"

    def test_logged_scalars_read_back(self, tracker_run: TrackerRun) -> None:
        tracker = self.make()
        run_id = tracker.start(tracker_run)
        assert isinstance(run_id, str) and run_id, f"{self.label}: start must return an id"
        tracker.log(2, {"train/loss": 5.5, "train/lr": 0.001})
        tracker.log(4, {"train/loss": 5.25})
        tracker.log(4, {"val/loss": 5.75})
        tracker.finish("completed", {"final_val_loss": 5.75, "cloze_acc": 0.25})
        assert self._series(tracker_run, run_id, "train/loss") == [(2, 5.5), (4, 5.25)]
        assert self._series(tracker_run, run_id, "val/loss") == [(4, 5.75)]

    def test_resume_continues_the_same_run(self, tracker_run: TrackerRun) -> None:
        first = self.make()
        run_id = first.start(tracker_run)
        first.log(2, {"train/loss": 6.0})
        first.finish("stopped", {})
        # A new process (a requeued job) continues from step 2 with the id glmlab kept.
        resumed = self.make()
        again = TrackerRun(**{**tracker_run.__dict__, "resume_id": run_id, "start_step": 2})
        assert resumed.start(again) == run_id, f"{self.label} opened a new run on resume"
        resumed.log(4, {"train/loss": 5.0})
        resumed.log(6, {"train/loss": 4.0})
        resumed.finish("completed", {"final_val_loss": 4.5})
        assert self._series(tracker_run, run_id, "train/loss") == [(2, 6.0), (4, 5.0), (6, 4.0)]
