"""``attention: auto`` by measurement: the selection logic with injected timings (no GPU)."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest
import torch

from glmlab import hookimpl
from glmlab.model import attention_select as sel
from glmlab.model.attention_candidates import (
    AUTO_CUDA_PREFERENCE,
    NOT_TIMED,
    AttentionRequest,
    backend_candidates,
)
from glmlab.model.attention_select import (
    AttentionSelection,
    MeasureOn,
    SelectionCache,
    choose,
    fastest,
    forward_backward_timer,
    measure_auto,
    should_measure,
)
from glmlab.model.build import build_model
from glmlab.plugin.base import AttentionBackendBase
from glmlab.plugin.registry import PluginRegistry, get_registry
from tests.test_model import glm_batch, tiny_config

PREFERENCE = ("sdpa", "flex", "xformers")
KEY = {"gpu": "test", "shape": {"batch_size": 2, "seq_len": 64}, "candidates": ["a", "b"]}


def table(timings: dict[str, float | Exception]):
    """A timer reading ``timings`` (raising the exceptions), recording the names it timed."""
    calls: list[str] = []

    def timer(name: str) -> float:
        calls.append(name)
        value = timings[name]
        if isinstance(value, Exception):
            raise value
        return value

    timer.calls = calls
    return timer


def never_called(name: str) -> float:
    raise AssertionError(f"timed {name} although the decision was cached")


# -- choosing ----------------------------------------------------------------------------


def test_fastest_wins_and_ties_go_to_the_preference_order() -> None:
    assert fastest({"sdpa": 2.0, "flex": 1.0, "xformers": 3.0}, PREFERENCE) == "flex"
    # within 3% of the fastest: a tie, the preference order decides
    assert fastest({"sdpa": 1.02, "flex": 1.0}, PREFERENCE) == "sdpa"
    assert fastest({"sdpa": 1.0, "flex": 1.0}, PREFERENCE) == "sdpa"
    assert fastest({"sdpa": 1.05, "flex": 1.0}, PREFERENCE) == "flex"
    # names the preference does not know come after those it does; among them, time then name
    assert fastest({"zeta": 1.0, "alpha": 1.0, "flex": 1.01}, PREFERENCE) == "flex"
    assert fastest({"zeta": 1.0, "alpha": 1.0}, PREFERENCE) == "alpha"
    assert fastest({"sdpa": 1.02, "flex": 1.0}, PREFERENCE, tie_tolerance=0.0) == "flex"
    with pytest.raises(ValueError, match="no timings"):
        fastest({}, PREFERENCE)


def test_choose_times_every_candidate_and_records_the_table(tmp_path: Path) -> None:
    timer = table({"sdpa": 0.7, "flex": 0.6, "xformers": 2.5})
    got = choose(
        ["xformers", "flex", "sdpa"],
        timer,
        preference=PREFERENCE,
        key=KEY,
        cache=SelectionCache(tmp_path),
        not_candidates={"eager": "reference"},
    )
    assert timer.calls == ["xformers", "flex", "sdpa"]
    assert (got.backend, got.method, got.requested) == ("flex", "measured", "auto")
    assert got.timings_ms == {"sdpa": 0.7, "flex": 0.6, "xformers": 2.5}
    assert got.skipped == {"eager": "reference"}
    assert got.shape == KEY["shape"]
    assert "flex 0.6 ms, sdpa 0.7 ms, xformers 2.5 ms" in got.summary()


def test_a_backend_that_raises_while_timed_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    timer = table({"xformers": RuntimeError("no kernel for head_dim 96"), "sdpa": 0.9})
    with caplog.at_level(logging.WARNING, logger="glmlab"):
        got = choose(["xformers", "sdpa"], timer, preference=PREFERENCE, key=KEY, cache=None)
    assert got.backend == "sdpa" and got.method == "measured"
    assert "no kernel for head_dim 96" in got.skipped["xformers"]
    assert "xformers" not in got.timings_ms
    assert any("'xformers'" in r.message and "skipped" in r.message for r in caplog.records)


def test_non_finite_timings_are_skipped() -> None:
    timer = table({"flex": float("nan"), "sdpa": 0.0, "xformers": 3.0})
    got = choose(["flex", "sdpa", "xformers"], timer, preference=PREFERENCE, key=KEY, cache=None)
    assert got.backend == "xformers" and set(got.skipped) == {"flex", "sdpa"}


def test_nothing_timed_falls_back_to_the_preference_and_caches_nothing(tmp_path: Path) -> None:
    cache = SelectionCache(tmp_path)
    timer = table({"xformers": RuntimeError("a"), "flex": RuntimeError("b")})
    got = choose(["xformers", "flex"], timer, preference=PREFERENCE, key=KEY, cache=cache)
    assert (got.backend, got.method) == ("flex", "default")
    assert cache.load(KEY) is None
    with pytest.raises(ValueError, match="no backend to choose from"):
        choose([], timer, preference=PREFERENCE, key=KEY, cache=cache)


# -- the cache ---------------------------------------------------------------------------


def test_cache_miss_measures_and_a_hit_reuses_the_decision(tmp_path: Path) -> None:
    cache = SelectionCache(tmp_path)
    first = choose(
        ["sdpa", "flex"],
        table({"sdpa": 1.0, "flex": 0.5}),
        preference=PREFERENCE,
        key=KEY,
        cache=cache,
    )
    assert first.method == "measured" and cache.path(KEY).exists()
    again = choose(["sdpa", "flex"], never_called, preference=PREFERENCE, key=KEY, cache=cache)
    assert (again.backend, again.method, again.timings_ms) == ("flex", "cached", first.timings_ms)
    # another shape is another key: measured afresh
    other = {**KEY, "shape": {"batch_size": 4, "seq_len": 64}}
    timer = table({"sdpa": 1.0, "flex": 2.0})
    assert (
        choose(["sdpa", "flex"], timer, preference=PREFERENCE, key=other, cache=cache).backend
        == "sdpa"
    )
    assert timer.calls == ["sdpa", "flex"]


def test_a_cached_backend_that_is_no_longer_a_candidate_is_measured_again(tmp_path: Path) -> None:
    cache = SelectionCache(tmp_path)
    cache.store(KEY, AttentionSelection("flex", "measured", "auto", {"flex": 0.5}))
    timer = table({"sdpa": 1.0})
    got = choose(["sdpa"], timer, preference=PREFERENCE, key=KEY, cache=cache)
    assert (got.backend, got.method, timer.calls) == ("sdpa", "measured", ["sdpa"])


def test_an_unreadable_cache_entry_is_measured_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = SelectionCache(tmp_path)
    cache.path(KEY).parent.mkdir(parents=True)
    cache.path(KEY).write_text("{not json")
    timer = table({"sdpa": 1.0})
    with caplog.at_level(logging.WARNING, logger="glmlab"):
        got = choose(["sdpa"], timer, preference=PREFERENCE, key=KEY, cache=cache)
    assert got.method == "measured" and "unreadable cache entry" in caplog.text
    # an entry stored under another key (a collision, an edited file) is not trusted
    cache.path(KEY).write_text('{"key": {"gpu": "other"}, "selection": {"backend": "sdpa"}}')
    assert cache.load(KEY) is None


def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / sel.CACHE_SUBDIR).write_text("a file where the cache folder should be")
    with caplog.at_level(logging.WARNING, logger="glmlab"):
        got = choose(
            ["sdpa"],
            table({"sdpa": 1.0}),
            preference=PREFERENCE,
            key=KEY,
            cache=SelectionCache(tmp_path),
        )
    assert got.method == "measured" and "decision not cached" in caplog.text


# -- candidates, the timer, and the run-level entry point --------------------------------


class Biasless(AttentionBackendBase):
    supports_bias = False

    def is_available(self, device: torch.device) -> bool:
        return True


class NeedsOptions(AttentionBackendBase):
    def __init__(self, *, window: int) -> None:
        self.window = window


class BrokenCheck(AttentionBackendBase):
    def is_available(self, device: torch.device) -> bool:
        raise RuntimeError("driver query failed")


class ExtraBackends:
    @hookimpl
    def glmlab_attention_backends(self):
        return {"biasless": Biasless, "needs_options": NeedsOptions, "broken_check": BrokenCheck}


def registry_with_extras() -> PluginRegistry:
    registry = PluginRegistry()
    registry.load_entry_points()
    registry.register(ExtraBackends(), distribution="test")
    return registry


def test_backend_candidates_skip_the_reference_unavailable_and_biasless_backends() -> None:
    registry = registry_with_extras()
    names, left_out = backend_candidates(
        registry, torch.device("cpu"), needs_bias=False, timed=True
    )
    assert sorted(names) == ["biasless", "sdpa"]
    assert left_out["eager"] == NOT_TIMED["eager"]
    assert "not available on cpu" in left_out["xformers"] and "not available" in left_out["flex"]
    assert "cannot be built" in left_out["needs_options"]
    assert "not available" in left_out["broken_check"]  # its check raised: left out, run goes on
    names, left_out = backend_candidates(registry, torch.device("cpu"), needs_bias=True, timed=True)
    assert names == ["sdpa"] and "no attention bias" in left_out["biasless"]


def test_the_timer_takes_the_median_within_the_budget() -> None:
    ticks = itertools.count(step=0.5)  # every clock read advances 0.5 s: each call takes 0.5 s
    attends = []
    backend = get_registry().create("attention", "sdpa")

    class Counting(type(backend)):
        def attend(self, *args, **kwargs):
            attends.append(args[0].shape)
            return super().attend(*args, **kwargs)

    class CountingPlugin:
        @hookimpl
        def glmlab_attention_backends(self):
            return {"counting": Counting}

    registry = PluginRegistry()
    registry.register(CountingPlugin(), distribution="test")
    layout = glm_batch().layout
    timer = forward_backward_timer(
        registry,
        {},
        layout,
        n_heads=2,
        head_dim=8,
        dtype=torch.float32,
        device=torch.device("cpu"),
        bias=None,
        budget_s=2.0,
        clock=lambda: next(ticks),
    )
    assert timer("counting") == 500.0
    # one warm-up call, one first timed call, then 2.0 s / 0.5 s - 1 more
    assert len(attends) == 1 + 1 + 3
    assert attends[0] == (layout.batch_size, 2, layout.seq_len, 8)


def test_measure_auto_on_rank_zero_times_caches_and_broadcasts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLMLAB_CACHE", str(tmp_path))
    shared = []
    measure_on = MeasureOn(
        sample=glm_batch, dtype=torch.float32, broadcast=lambda obj: shared.append(obj) or obj
    )
    kwargs = dict(n_heads=4, head_dim=16, make_bias=None, needs_bias=False, preference=PREFERENCE)
    got = measure_auto(AttentionRequest(get_registry(), torch.device("cpu"), **kwargs), measure_on)
    assert got.backend == "sdpa" and got.method == "measured" and got.timings_ms["sdpa"] > 0
    assert shared == [got.as_dict()]
    assert got.shape == {
        "batch_size": 3,
        "seq_len": 32,
        "n_heads": 4,
        "head_dim": 16,
        "dtype": "float32",
        "bias": False,
        "dropout": False,
    }
    again = measure_auto(
        AttentionRequest(get_registry(), torch.device("cpu"), **kwargs), measure_on
    )
    assert again.method == "cached" and again.timings_ms == got.timings_ms
    assert len(list((tmp_path / sel.CACHE_SUBDIR).glob("*.json"))) == 1


def test_other_ranks_take_rank_zeros_decision_without_measuring() -> None:
    def no_sample():
        raise AssertionError("only rank 0 builds the sample batch")

    decided = AttentionSelection("flex", "measured", "auto", {"flex": 0.5, "sdpa": 0.7})
    measure_on = MeasureOn(sample=no_sample, is_main=False, broadcast=lambda _: decided.as_dict())
    request = AttentionRequest(
        get_registry(), torch.device("cpu"), n_heads=4, head_dim=16, preference=PREFERENCE
    )
    got = measure_auto(request, measure_on)
    assert got == decided


def test_a_failure_on_rank_zero_reaches_every_rank() -> None:
    def broken_sample():
        raise OSError("corpus unreadable")

    sent = []
    kwargs = dict(n_heads=4, head_dim=16, make_bias=None, needs_bias=False, preference=PREFERENCE)
    main = MeasureOn(sample=broken_sample, broadcast=lambda obj: sent.append(obj) or obj)
    with pytest.raises(RuntimeError, match="failed on rank 0: OSError: corpus unreadable"):
        measure_auto(AttentionRequest(get_registry(), torch.device("cpu"), **kwargs), main)
    # rank 0 still took part in the broadcast, so the others do not wait forever
    other = MeasureOn(sample=broken_sample, is_main=False, broadcast=lambda _: sent[0])
    with pytest.raises(RuntimeError, match="corpus unreadable"):
        measure_auto(AttentionRequest(get_registry(), torch.device("cpu"), **kwargs), other)


def test_only_auto_on_cuda_with_a_sample_is_measured() -> None:
    measure_on = MeasureOn(sample=glm_batch)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert should_measure("auto", cuda, measure_on)
    assert not should_measure("xformers", cuda, measure_on)  # an explicit choice is obeyed
    assert not should_measure("auto", cpu, measure_on)  # the CPU keeps sdpa, untimed
    assert not should_measure("auto", cuda, None)


def test_build_model_records_how_the_backend_was_chosen() -> None:
    def no_sample():
        raise AssertionError("nothing is measured on the CPU")

    measure_on = MeasureOn(sample=no_sample)
    auto = build_model(
        tiny_config(),
        positional="learned_2d",
        norm_layout="pre_ln",
        attention="auto",
        measure_on=measure_on,
    )
    assert auto.attention_selection == AttentionSelection("sdpa", "default", "auto")
    explicit = build_model(
        tiny_config(),
        positional="learned_2d",
        norm_layout="pre_ln",
        attention="eager",
        measure_on=measure_on,
    )
    assert explicit.attention_selection == AttentionSelection("eager", "explicit", "eager")
    assert AUTO_CUDA_PREFERENCE[0] == "sdpa"  # the untimed CUDA choice (docs/PERFORMANCE.md)


def test_selection_round_trips_through_json_types() -> None:
    s = AttentionSelection("sdpa", "measured", "auto", {"sdpa": 0.5}, {"eager": "ref"}, {"a": 1})
    assert AttentionSelection.from_dict({**s.as_dict(), "unknown_field": 1}) == s


def test_backend_candidates_skip_backends_without_attention_dropout() -> None:
    # Biasless sets no supports_dropout: a model with attention dropout cannot use it.
    registry = registry_with_extras()
    names, left_out = backend_candidates(
        registry, torch.device("cpu"), needs_bias=False, needs_dropout=True, timed=True
    )
    assert names == ["sdpa"] and "no attention dropout" in left_out["biasless"]
