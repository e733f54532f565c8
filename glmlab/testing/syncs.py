"""Find host syncs in a code path without a GPU: the aten operators that read a tensor's
value on the host (``.item()``, ``bool(t)``, ``int(t)``, ``torch.equal``, ``nonzero`` and
boolean-mask indexing, device-to-host copies), recorded as they are dispatched.

    with HostSyncs() as syncs:
        model.loss(batch).backward()
    assert syncs.ops == []

On CUDA each of these stalls the host until the device has caught up; on the CPU they are
cheap but dispatched the same way, so a CPU test catches them. Python-level reads that
bypass the dispatcher (``Tensor.tolist()``) are not seen.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Operators whose result is a host value computed from device data.
SYNCING_OPS = frozenset(
    {
        "_local_scalar_dense",  # .item(), int(t), float(t)
        "is_nonzero",  # bool(t)
        "equal",  # torch.equal
        "nonzero",  # its output size depends on the data
        "masked_select",
        "_unique2",
        "unique_consecutive",
        "unique_dim",
        "repeat_interleave",  # without output_size: its size depends on the data
    }
)


class HostSyncs(TorchDispatchMode):
    """Records the syncing operators (:data:`SYNCING_OPS`, and copies from a CUDA tensor
    to the CPU) dispatched while active; ``ops`` lists their names in order."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name in SYNCING_OPS or _device_to_host(name, args, kwargs):
            self.ops.append(name)
        return func(*args, **kwargs)


def _device_to_host(name: str, args: tuple, kwargs: dict) -> bool:
    if name not in ("_to_copy", "copy_"):
        return False
    src = args[1] if name == "copy_" else args[0]
    dst_device = args[0].device if name == "copy_" else kwargs.get("device")
    return (
        isinstance(src, torch.Tensor)
        and src.device.type == "cuda"
        and dst_device is not None
        and torch.device(dst_device).type == "cpu"
    )
