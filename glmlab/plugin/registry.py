"""The plugin registry: discovers plugins through the ``glmlab`` entry-point group and looks
them up by (kind, name).

Built-in plugins are listed in glmlab's own ``pyproject.toml`` under the same group, so they
load exactly the way a third-party package's plugins do.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from glmlab.plugin import hookspecs
from glmlab.plugin.errors import (
    DuplicatePluginError,
    IncompatiblePluginError,
    PluginError,
    PluginFactoryError,
    PluginLoadError,
    PluginOptionsError,
    PluginOptionValueError,
    UnknownPluginError,
)
from glmlab.plugin.hookspecs import API_VERSION, KINDS, PROJECT, SUPPORTED_API_VERSIONS


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

    def listing_row(self) -> dict[str, str]:
        """Its row in ``glmlab plugins`` (without the hook and the clash flag)."""
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
        # (kind, name) -> every entry claiming it, when two or more do: using it fails.
        self._clashes: dict[tuple[str, str], list[PluginEntry]] = {}
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
        if declared not in SUPPORTED_API_VERSIONS:
            raise IncompatiblePluginError(
                f"plugin '{module}' of distribution '{distribution}' declares "
                f"GLMLAB_API_VERSION = {declared!r}, but this glmlab provides hook API version "
                f"{API_VERSION}. Install a version of '{distribution}' built for glmlab's API "
                f"{API_VERSION}, or uninstall it"
                + (
                    " (its author: docs/PLUGINS.md, 'Migrating from glmlab 0.1', lists the "
                    "new import paths)."
                    if declared == 1
                    else "."
                )
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
                # pluggy's opt-in arguments: an implementation gets the context it declares.
                provided = impl.function(*(hookspecs.HOOK_CONTEXT[a] for a in impl.argnames))
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
        factory_module = getattr(factory, "__module__", module) or module
        entry = PluginEntry(kind, name, factory, dist, version, factory_module, ep)
        if key in self._entries:  # the first clash on this name
            self._clashes[key] = [self._entries.pop(key)]
        if key in self._clashes:
            # Recorded, not raised: only a run that uses this name fails (see get()).
            self._clashes[key].append(entry)
            return
        self._entries[key] = entry

    def _clash_error(self, kind: str, name: str) -> DuplicatePluginError:
        claimants = self._clashes[(kind, name)]
        who = " and ".join(
            f"distribution '{e.distribution}' (module {e.module})" for e in claimants
        )
        return DuplicatePluginError(
            f"{len(claimants)} plugins claim {kind} '{name}': {who}. Uninstall one of them "
            f"or rename one plugin; runs that do not use {kind} '{name}' are unaffected."
        )

    def clashes(self) -> dict[tuple[str, str], list[PluginEntry]]:
        """(kind, name) -> the entries that claim it, for every name registered twice."""
        return {key: list(entries) for key, entries in self._clashes.items()}

    # -- lookup -------------------------------------------------------------------------
    def get(self, kind: str, name: str) -> PluginEntry:
        """The entry registered as ``name`` for ``kind``; a clear error if there is none."""
        if kind not in KINDS:
            raise UnknownPluginError(
                f"unknown plugin kind '{kind}'; the kinds are: {', '.join(sorted(KINDS))}"
            )
        if (kind, name) in self._clashes:
            raise self._clash_error(kind, name)
        try:
            return self._entries[(kind, name)]
        except KeyError:
            available = [e for e in self.entries(kind)]
            listing = ", ".join(f"'{e.name}' ({e.distribution})" for e in available) or "none"
            raise UnknownPluginError(
                f"no {kind} plugin named '{name}'. Available {kind} plugins: {listing}. "
                f"Pick one of these in the config, or install the package that provides '{name}'."
            ) from None

    def create(
        self,
        kind: str,
        name: str,
        /,
        *,
        settings: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        """Build the plugin ``name`` of ``kind``; every error names the plugin.

        ``options`` come from the config (``conf/<kind>/<name>.yaml``): the factory must
        accept each, and receives each. ``settings`` are what glmlab offers the kind (the
        model's ``dim``, ``init_std``...): the factory receives those its signature declares
        (all of them with ``**kwargs``), so a factory written before a setting existed keeps
        working. Both are checked against the signature before the call
        (:class:`PluginOptionsError`); an exception raised by the factory itself becomes a
        :class:`PluginFactoryError` chained to it, except a :class:`PluginError`, which the
        factory raises to say what is wrong in glmlab's words and passes through as it is.
        """
        entry = self.get(kind, name)
        label = f"{kind} plugin '{name}' (distribution '{entry.distribution}')"
        kwargs = factory_arguments(
            entry.factory, settings or {}, options, label=label, config=f"conf/{kind}/{name}.yaml"
        )
        try:
            built = entry.factory(**kwargs)
        except PluginError:
            raise  # already glmlab's word on the plugin (e.g. TrackerUnavailable: what to install)
        except Exception as exc:
            error = PluginOptionValueError if isinstance(exc, ValueError) else PluginFactoryError
            raise error(
                f"{kind} plugin '{name}' (distribution '{entry.distribution}', module "
                f"{entry.module}) failed while building with options {options}: "
                f"{type(exc).__name__}: {exc}. The plugin's traceback is above."
            ) from exc
        from glmlab.plugin.base import check_base  # imports torch: once a plugin is built

        check_base(kind, built, label)
        return built

    def names(self, kind: str) -> list[str]:
        """The usable names of ``kind`` (a name two plugins claim is left out)."""
        return sorted(name for k, name in self._entries if k == kind)

    def entries(self, kind: str | None = None) -> Iterable[PluginEntry]:
        """Every registered entry, both sides of a clash included (see :meth:`clashes`)."""
        clashing = (e for claimants in self._clashes.values() for e in claimants)
        return sorted(
            (e for e in [*self._entries.values(), *clashing] if kind is None or e.kind == kind),
            key=lambda e: (e.kind, e.name, e.distribution),
        )


def factory_arguments(
    factory: Callable[..., Any],
    settings: Mapping[str, Any],
    options: Mapping[str, Any],
    *,
    label: str,
    config: str = "the plugin's config group",
) -> dict[str, Any]:
    """The keyword arguments to call ``factory`` with: every option, and the settings its
    signature declares (all of them when it takes ``**kwargs``).

    An option named like a setting wins over it (a plugin that had its own ``eps`` option
    before glmlab offered one keeps its configured value). Raises :class:`PluginOptionsError`,
    naming ``label``, the bad options and the accepted ones, when an option is unknown or a
    required parameter is given by neither.
    """
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):  # no introspectable signature: pass everything
        return {**settings, **options}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return {**settings, **options}
    by_keyword = {p.name: p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(options) - set(by_keyword))
    given = {**{k: v for k, v in settings.items() if k in by_keyword}, **options}
    missing = sorted(n for n, p in by_keyword.items() if p.default is p.empty and n not in given)
    if unknown or missing:
        problems = [f"unknown option(s) {unknown}"] * bool(unknown)
        problems += [f"missing required option(s) {missing}"] * bool(missing)
        settings_note = f" and receives the settings {sorted(settings)}" if settings else ""
        raise PluginOptionsError(
            f"{label}: {' and '.join(problems)}. It accepts the options "
            f"{sorted(set(by_keyword) - set(settings))}{settings_note}. Check {config} or "
            "your overrides."
        )
    return given


@functools.cache
def get_registry() -> PluginRegistry:
    """The process-wide registry, loaded from installed entry points on first use."""
    registry = PluginRegistry()
    registry.load_entry_points()
    return registry
