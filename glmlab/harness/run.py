"""Scoring runs on lm-evaluation-harness tasks: the tasks checked before anything is
written (:func:`check_tasks`: an unknown name, missing data or a missing package is one
line), a run's final weights scored through ``lm_eval.simple_evaluate`` with the glmlab
model (:func:`score_run`), and the per-item results merged into the run's
``harness_items.json`` (:mod:`glmlab.harness.items` says what it holds), which the report
reads beside ``eval_items.json``. docs/HARNESS.md is the user's guide.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmlab.harness.items import FORMAT, HarnessTask, task_items
from glmlab.harness.readers import MASK_CHOICES
from glmlab.io import read_json, write_json_atomic
from glmlab.runs.layout import HARNESS_ITEMS

__all__ = [
    "HarnessError",
    "HarnessSettings",
    "check_tasks",
    "fetch_tasks",
    "missing_tasks",
    "run_settings",
    "score_at_end",
    "score_run",
]

log = logging.getLogger("glmlab")

GUIDE = "docs/HARNESS.md"


class HarnessError(ValueError):
    """A harness task glmlab cannot run; the message says which and what to do."""


@dataclass(frozen=True)
class HarnessSettings:
    """What to score: lm-eval task (or group, tag) names, ``limit`` items per task (None:
    all), ``num_fewshot`` (None: each task's default), ``include_path`` (a folder of task
    YAMLs), samples per forward, the device, and a GLM run's mask (``auto``)."""

    tasks: tuple[str, ...]
    limit: int | None = None
    num_fewshot: int | None = None
    include_path: str | None = None
    batch_size: int = 16
    device: str = "auto"
    mask: str = "auto"

    def __post_init__(self) -> None:
        for key, value, ok, allowed in (
            ("limit", self.limit, self.limit is None or self.limit >= 1, "an integer >= 1"),
            (
                "num_fewshot",
                self.num_fewshot,
                self.num_fewshot is None or self.num_fewshot >= 0,
                "an integer >= 0",
            ),
            ("batch_size", self.batch_size, self.batch_size >= 1, "an integer >= 1"),
            ("mask", self.mask, self.mask in MASK_CHOICES, "one of " + ", ".join(MASK_CHOICES)),
        ):
            if not ok:
                raise HarnessError(f"harness {key}={value}: must be {allowed}")

    @classmethod
    def from_config(cls, harness: Any, *, device: str = "auto") -> HarnessSettings:
        """From the run config's ``harness`` group (glmlab/config/schema.py)."""
        return cls(
            tasks=tuple(harness.tasks),
            limit=harness.limit,
            num_fewshot=harness.num_fewshot,
            include_path=harness.include_path,
            batch_size=harness.batch_size,
            device=device,
            mask=harness.mask,
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """lm-eval's log lines (a few per task: defaults it fills in, request counts) kept out
    of glmlab's output; its errors still show."""
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_settings(spec: Any) -> HarnessSettings | None:
    """A run's harness settings (its ``harness`` config; None without tasks) on the run's
    device; one line when the run would keep no weights to score."""
    if not spec.harness.tasks:
        return None
    if spec.train.keep_checkpoint == "none":
        raise HarnessError(
            "harness.tasks scores the final weights, which train.keep_checkpoint=none "
            "removes: use train.keep_checkpoint=final (the default) or last"
        )
    return HarnessSettings.from_config(spec.harness, device=spec.train.device)


def score_at_end(run_dir: str | Path, settings: HarnessSettings, *, progress: bool) -> str | None:
    """The harness tasks on a run that has just completed; returns their error on one line,
    None when they were scored. A failure never fails the trained run: it is logged,
    recorded as result.json's ``harness_error`` and left to ``glmlab harness`` to retry."""
    try:
        score_run(run_dir, settings, progress=progress)
    except Exception as exc:  # the run's training result stands whatever the harness does
        error = f"{type(exc).__name__}: {exc}"
        log.error(
            "harness tasks of %s failed (%s); retry: glmlab harness %s", run_dir, error, run_dir
        )
        return error
    return None


def _task_manager(settings: HarnessSettings) -> Any:
    """lm-eval's task index: the include path alone when it holds every requested name
    (no scan of the ~14,000 task files lm-eval 0.4.13 ships), else lm-eval's tasks as well."""
    from lm_eval.tasks import TaskManager

    if settings.include_path:
        if not Path(settings.include_path).is_dir():
            raise HarnessError(
                f"harness include_path {settings.include_path}: no such folder of task YAMLs"
            )
        local = TaskManager(include_path=settings.include_path, include_defaults=False)
        if set(settings.tasks) <= set(local.all_tasks):
            return local
    return TaskManager(include_path=settings.include_path or None)


def _dataset_of(manager: Any, name: str) -> str:
    """How a message names the dataset of task ``name``."""
    entry = manager.task_index.get(name)
    cfg = getattr(entry, "cfg", None) or {}
    path, subset = cfg.get("dataset_path"), cfg.get("dataset_name")
    files = (cfg.get("dataset_kwargs") or {}).get("data_files")
    if files:
        listed = files.values() if isinstance(files, dict) else [files]
        return f"the files {', '.join(map(str, listed))}"
    if path:
        return f"the dataset {path}" + (f" ({subset})" if subset else "")
    return "its dataset"


def _load_error(manager: Any, name: str, exc: BaseException) -> HarnessError:
    """One line for a task that lm-eval could not load."""
    reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    if isinstance(exc, KeyError):
        close = difflib.get_close_matches(name, manager.all_tasks, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        return HarnessError(
            f"unknown harness task {name!r}: {hint}list the tasks with `lm-eval ls tasks` "
            "(add --include_path DIR for your own task YAMLs)"
        )
    if isinstance(exc, ImportError):
        module = getattr(exc, "name", None) or "a module"
        return HarnessError(
            f"harness task {name!r} needs the Python module {module}, which lm-eval imports "
            f"for it ({reason}): install it (pip install {module.split('.')[0]}; for "
            "transformers.data.metrics: pip install 'transformers<5')"
        )
    dataset = _dataset_of(manager, name)
    if "files" in dataset:
        how = "write them, or point the task YAML's data_files at them"
    else:
        how = (
            "fetch it once where the Hub is reachable (HF_DATASETS_CACHE=<shared folder> "
            f"glmlab harness --fetch --tasks {name}), then run with the same "
            f"HF_DATASETS_CACHE and HF_DATASETS_OFFLINE=1 ({GUIDE})"
        )
    return HarnessError(
        f"harness task {name!r} needs {dataset}, which could not be loaded ({reason}): {how}"
    )


def _load_tasks(manager: Any, names: Sequence[str]) -> dict[str, Any]:
    """``{leaf task name: Task}`` of ``names`` (groups and tags expanded), one
    :class:`HarnessError` line for the first that fails."""
    tasks: dict[str, Any] = {}
    for name in names:
        try:
            with _quiet():
                loaded = manager.load([name])
        except Exception as exc:  # lm-eval and datasets raise anything: name the task
            raise _load_error(manager, name, exc) from None
        tasks.update(loaded["tasks"])
    return tasks


def check_tasks(settings: HarnessSettings) -> list[str]:
    """Load every task of ``settings`` (and so its data) before anything is written; the
    leaf task names, or one :class:`HarnessError` line."""
    if not settings.tasks:
        raise HarnessError("no harness tasks: give --tasks or set harness.tasks=[...]")
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise HarnessError(
            "harness tasks need lm-evaluation-harness: pip install 'glmlab[harness]'"
        ) from None
    return sorted(_load_tasks(_task_manager(settings), settings.tasks))


def fetch_tasks(settings: HarnessSettings) -> list[str]:
    """Load (download into the datasets cache) every task's data; the leaf task names."""
    return check_tasks(settings)


def read_items(run_dir: str | Path) -> dict[str, Any]:
    """A run's harness_items.json, or an empty record."""
    path = Path(run_dir) / HARNESS_ITEMS
    if path.exists():
        with contextlib.suppress(OSError, ValueError):
            found = read_json(path)
            if isinstance(found, dict):
                return found
    return {"format": FORMAT, "tasks": {}, "metrics": {}, "reference_metrics": {}}


def _request(settings: HarnessSettings) -> dict[str, Any]:
    return {"limit": settings.limit, "num_fewshot": settings.num_fewshot}


def missing_tasks(run_dir: str | Path, settings: HarnessSettings) -> list[str]:
    """The task names of ``settings`` that ``run_dir`` holds no result of, scored with the
    same limit and few-shot setting (names as requested: groups and tags too)."""
    requests = read_items(run_dir).get("requests") or {}
    return [t for t in settings.tasks if requests.get(t) != _request(settings)]


def _merge(
    old: dict[str, Any], new: dict[str, dict[str, Any]], settings: HarnessSettings
) -> dict[str, Any]:
    """``old`` with every task of ``new`` replaced (its metrics named ``<task>/...``) and
    the requested names of ``settings`` recorded."""
    out: dict[str, Any] = {
        "format": FORMAT,
        "tasks": dict(old.get("tasks") or {}),
        "metrics": dict(old.get("metrics") or {}),
        "reference_metrics": {k: dict(v) for k, v in (old.get("reference_metrics") or {}).items()},
        "scored": dict(old.get("scored") or {}),
        "requests": dict(old.get("requests") or {}),
    }
    for task, result in new.items():
        prefix = f"{task}/"
        for key in ("tasks", "metrics"):
            out[key] = {k: v for k, v in out[key].items() if not k.startswith(prefix)}
            out[key].update(result[key])
        for ref, levels in list(out["reference_metrics"].items()):
            out["reference_metrics"][ref] = {
                k: v for k, v in levels.items() if not k.startswith(prefix)
            }
        for ref, levels in result["reference_metrics"].items():
            out["reference_metrics"].setdefault(ref, {}).update(levels)
        out["scored"][task] = result["scored"]
    for name in settings.tasks:
        out["requests"][name] = _request(settings)
    return out


def score_run(
    run_dir: str | Path, settings: HarnessSettings, *, progress: bool = False
) -> dict[str, float]:
    """Score ``run_dir``'s final weights on the tasks of ``settings`` and merge the results
    into its harness_items.json (tasks scored before and not now are kept). Returns the
    new metrics. Nothing but harness_items.json is written."""
    import lm_eval
    from lm_eval import simple_evaluate

    from glmlab.harness.lm import GLMLabLM

    run_dir = Path(run_dir)
    started = time.perf_counter()
    manager = _task_manager(settings)
    tasks = _load_tasks(manager, settings.tasks)
    lm = GLMLabLM(
        run_dir=run_dir,
        device=settings.device,
        batch_size=settings.batch_size,
        mask=settings.mask,
        progress=progress,
    )
    with _quiet():
        results = simple_evaluate(
            model=lm,
            tasks=list(tasks.values()),
            task_manager=manager,
            num_fewshot=settings.num_fewshot,
            limit=settings.limit,
            bootstrap_iters=0,  # glmlab's report computes the intervals
            log_samples=True,
        )
    new: dict[str, dict[str, Any]] = {}
    for name, task in tasks.items():
        harness_task = HarnessTask(
            name,
            task.OUTPUT_TYPE,
            {m: getattr(f, "__name__", str(f)) for m, f in task.aggregation().items()},
            results["samples"][name],
            results["results"].get(name, {}),
        )
        result = task_items(harness_task)
        result["scored"] = {
            "limit": settings.limit,
            "num_fewshot": settings.num_fewshot,
            "n_items": len({s["doc_id"] for s in harness_task.samples}),
            "doc_ids": sorted({int(s["doc_id"]) for s in harness_task.samples}),
            "version": (results.get("versions") or {}).get(name),
            "lm_eval": lm_eval.__version__,
            "step": lm.run.step,
            "reader": type(lm.reader).__name__,
            "mask": getattr(lm.reader, "kind", None),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        new[name] = result
    write_json_atomic(run_dir / HARNESS_ITEMS, _merge(read_items(run_dir), new, settings))
    log.info(
        "harness: %s scored on %s in %.1f s",
        run_dir,
        ", ".join(sorted(new)),
        time.perf_counter() - started,
    )
    return {k: v for result in new.values() for k, v in result["metrics"].items()}
