"""The built-in backends every machine runs. How each backend's outputs and gradients
match the definition of attention is the conformance kit's job
(``tests/test_conformance.py``), which skips a backend that says it is unavailable: so
this checks that ``eager`` and ``sdpa`` never say so on a CPU."""

from __future__ import annotations

import pytest
import torch

from glmlab.plugin.registry import get_registry


@pytest.mark.parametrize("name", ["eager", "sdpa"])
def test_available_on_cpu(name: str) -> None:
    assert get_registry().create("attention", name).is_available(torch.device("cpu")) is True
