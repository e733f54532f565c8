"""Everything glmlab keeps only for plugins written against an older layout, in one place,
each with the version that removes it (:data:`REMOVED_IN`).

- The protocol names of glmlab 0.1 (``SpanSampler``, ``PositionalScheme``, ...): aliases of
  the bases in :mod:`glmlab.plugin.base`, read from here with a ``DeprecationWarning``.
- The import paths of glmlab 0.1 (hook API 1) that a plugin or an analysis script imports,
  :data:`MOVED_MODULES`: each old module is a thin forwarder that warns once when imported
  (:func:`forward`).
- The initialisation of duck-typed positional schemes: a scheme that does not derive from
  :class:`~glmlab.plugin.base.PositionalSchemeBase` relied on the model's N(0, init_std)
  init of its trainable weights, and still gets it (:func:`mark_legacy_init`,
  :func:`owns_its_init`).

(``AttentionLayout.host``, read as ``host_prepared``, lives on the dataclass in
:mod:`glmlab.structures` and goes in the same version.)
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

REMOVED_IN = "0.3.0"
"""The glmlab version that removes everything in this module."""

MOVED_MODULES: dict[str, tuple[str, ...]] = {
    "glmlab.hookspecs": ("glmlab.plugin.hookspecs",),
    "glmlab.registry": ("glmlab.plugin.registry",),
    "glmlab.plugin_base": ("glmlab.plugin.base",),
    "glmlab.plugin_helpers": ("glmlab.plugin.helpers",),
    "glmlab.interfaces": ("glmlab.plugin.compat",),
    "glmlab.trackers": ("glmlab.plugin.base", "glmlab.runs.trackers"),
}
"""Old public module -> the modules that now hold its names (looked up in order)."""

_ALIASES = {
    "SpanSampler": "SpanSamplerBase",
    "PositionalScheme": "PositionalSchemeBase",
    "NormLayout": "NormLayoutBase",
    "MaskBuilder": "MaskBuilderBase",
    "AttentionBackend": "AttentionBackendBase",
    "Tracker": "TrackerBase",
}
"""Former protocol name -> its base class in :mod:`glmlab.plugin.base`."""


def __getattr__(name: str) -> Any:
    """The former protocol names, with a ``DeprecationWarning``."""
    if name in _ALIASES:
        new = _ALIASES[name]
        warnings.warn(
            f"{name} is deprecated and is removed in glmlab {REMOVED_IN}: use "
            f"glmlab.plugin.base.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module("glmlab.plugin.base"), new)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def forward(old: str) -> Callable[[str], Any]:
    """Warn that module ``old`` moved (once, when it is imported) and return the module
    ``__getattr__`` that serves its names from their new modules."""
    targets = MOVED_MODULES[old]
    warnings.warn(
        f"{old} is deprecated and is removed in glmlab {REMOVED_IN}: import from "
        f"{' / '.join(targets)} (docs/PLUGINS.md, 'Migrating to hook API 2')",
        DeprecationWarning,
        stacklevel=3,
    )

    def module_getattr(name: str) -> Any:
        for target in targets:
            try:
                return getattr(importlib.import_module(target), name)
            except AttributeError:
                continue
        if name == "Tracker":  # glmlab.trackers.Tracker, the protocol's former name
            return __getattr__(name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return module_getattr


def mark_legacy_init(scheme: Any) -> None:
    """Mark a duck-typed positional scheme (adapted to its base when built) as relying on
    the model's initialisation of its weights."""
    scheme._glmlab_legacy_init = True


def owns_its_init(scheme: Any) -> bool:
    """Whether ``scheme`` initialises its own parameters: every scheme deriving from
    :class:`~glmlab.plugin.base.PositionalSchemeBase`. A duck-typed scheme written before
    the bases existed relied on the model's N(0, init_std) init of its trainable
    ``nn.Embedding`` / ``nn.Linear`` weights, and still gets it (until :data:`REMOVED_IN`)."""
    return not getattr(scheme, "_glmlab_legacy_init", False)
