"""The plugin registry: discovers plugins through the ``glmlab`` entry-point group and looks
them up by (kind, name).

Built-in plugins are listed in glmlab's own ``pyproject.toml`` under the same group, so they
load exactly the way a third-party package's plugins do.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from glmlab import hookspecs
from glmlab.hookspecs import API_VERSION, KINDS, PROJECT


class PluginError(Exception):
    """Base class for registry errors: each message says what to fix."""


class UnknownPluginError(PluginError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class DuplicatePluginError(PluginError):
    pass


class PluginLoadError(PluginError):
    pass


class IncompatiblePluginError(PluginError):
    pass


@dataclass(frozen=True)
class PluginEntry:
    """One registered plugin: what a listing shows and what a lookup returns."""

    kind: str
    name: str
    factory: Callable[..., Any]
    distribution: str
    version: str
    module: str
    entry_point: str

    def describe(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "entry_point": self.entry_point,
        }


class PluginRegistry:
    """Holds the plugins of every kind. Use :func:`get_registry` for the process-wide one."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._entries: dict[tuple[str, str], PluginEntry] = {}
        self._sources: dict[str, tuple[str, str, str]] = {}  # plugin name -> dist, version, ep

    # -- registration -------------------------------------------------------------------
    def load_entry_points(self, group: str = PROJECT) -> None:
        """Import and register every plugin in the entry-point ``group``."""
        for ep in sorted(
            md.entry_points(group=group), key=lambda e: (e.dist.name if e.dist else "", e.name)
        ):
            dist = ep.dist.name if ep.dist is not None else "<unknown distribution>"
            version = ep.dist.version if ep.dist is not None else "?"
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginLoadError(
                    f"glmlab plugin entry point '{ep.name} = {ep.value}' of distribution "
                    f"'{dist}' failed to import: {type(exc).__name__}: {exc}. Fix or uninstall "
                    f"'{dist}'."
                ) from exc
            self.register(plugin, distribution=dist, version=version, entry_point=ep.name)

    def register(
        self,
        plugin: ModuleType | object,
        *,
        distribution: str,
        version: str = "0",
        entry_point: str | None = None,
    ) -> None:
        """Register one plugin object (usually a module) and index what its hooks provide."""
        declared = getattr(plugin, "GLMLAB_API_VERSION", API_VERSION)
        module = getattr(plugin, "__name__", type(plugin).__name__)
        if declared != API_VERSION:
            raise IncompatiblePluginError(
                f"plugin '{module}' of distribution '{distribution}' declares "
                f"GLMLAB_API_VERSION = {declared!r}, but this glmlab provides hook API version "
                f"{API_VERSION}. Install a version of '{distribution}' built for glmlab's API "
                f"{API_VERSION}, or uninstall it."
            )
        plugin_name = f"{distribution}:{entry_point or module}"
        if self._pm.is_registered(plugin) or self._pm.has_plugin(plugin_name):
            return
        self._pm.register(plugin, name=plugin_name)
        self._sources[plugin_name] = (distribution, version, entry_point or module)
        for kind, hook_name in KINDS.items():
            hook = getattr(self._pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                if impl.plugin_name != plugin_name:
                    continue
                provided = impl.function()
                if provided is None:
                    continue
                for name, factory in dict(provided).items():
                    self._add(kind, name, factory, plugin_name, module)

    def _add(
        self, kind: str, name: str, factory: Callable[..., Any], plugin_name: str, module: str
    ) -> None:
        dist, version, ep = self._sources[plugin_name]
        if not callable(factory):
            raise PluginLoadError(
                f"plugin '{module}' of distribution '{dist}' registers {kind} '{name}' with a "
                f"non-callable {type(factory).__name__}; a hook must map names to factories."
            )
        key = (kind, name)
        if key in self._entries:
            other = self._entries[key]
            raise DuplicatePluginError(
                f"two plugins claim {kind} '{name}': distribution '{other.distribution}' "
                f"(module {other.module}) and distribution '{dist}' (module {module}). "
                f"Uninstall one of them or rename one plugin."
            )
        factory_module = getattr(factory, "__module__", module) or module
        self._entries[key] = PluginEntry(kind, name, factory, dist, version, factory_module, ep)

    # -- lookup -------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> PluginEntry:
        """The entry registered as ``name`` for ``kind``; a clear error if there is none."""
        if kind not in KINDS:
            raise UnknownPluginError(
                f"unknown plugin kind '{kind}'; the kinds are: {', '.join(sorted(KINDS))}"
            )
        try:
            return self._entries[(kind, name)]
        except KeyError:
            available = [e for e in self.entries(kind)]
            listing = ", ".join(f"'{e.name}' ({e.distribution})" for e in available) or "none"
            raise UnknownPluginError(
                f"no {kind} plugin named '{name}'. Available {kind} plugins: {listing}. "
                f"Pick one of these in the config, or install the package that provides '{name}'."
            ) from None

    def create(self, kind: str, name: str, **options: Any) -> Any:
        """Build the plugin ``name`` of ``kind`` with ``options``; errors name the plugin."""
        entry = self.get(kind, name)
        try:
            return entry.factory(**options)
        except TypeError as exc:
            raise PluginError(
                f"{kind} plugin '{name}' (distribution '{entry.distribution}') rejected its "
                f"options {sorted(options)}: {exc}. Check conf/{kind}/ or your overrides."
            ) from exc

    def names(self, kind: str) -> list[str]:
        return [e.name for e in self.entries(kind)]

    def entries(self, kind: str | None = None) -> Iterable[PluginEntry]:
        return sorted(
            (e for e in self._entries.values() if kind is None or e.kind == kind),
            key=lambda e: (e.kind, e.name),
        )


@functools.cache
def get_registry() -> PluginRegistry:
    """The process-wide registry, loaded from installed entry points on first use."""
    registry = PluginRegistry()
    registry.load_entry_points()
    return registry
