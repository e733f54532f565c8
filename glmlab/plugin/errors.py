"""The plugin errors: each message names the plugin (and its distribution) and says what to
fix. :class:`PluginError` is the base of every error a plugin can cause."""

from __future__ import annotations

__all__ = [
    "DuplicatePluginError",
    "IncompatiblePluginError",
    "PluginContractError",
    "PluginError",
    "PluginFactoryError",
    "PluginLoadError",
    "PluginOptionValueError",
    "PluginOptionsError",
    "UnknownPluginError",
]


class PluginError(Exception):
    """Base class for registry errors: each message says what to fix."""


class UnknownPluginError(PluginError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class DuplicatePluginError(PluginError):
    """Two distributions register the same (kind, name): raised when that name is used."""


class PluginOptionsError(PluginError, TypeError):
    """A plugin's config options do not match its factory's signature (checked before the
    call)."""


class PluginFactoryError(PluginError):
    """A plugin's factory raised: the plugin's own failure, its exception chained."""


class PluginOptionValueError(PluginFactoryError, ValueError):
    """A plugin's factory raised ValueError: how a plugin refuses an option's value. Still
    a ValueError, as code written before :class:`PluginFactoryError` expects."""


class PluginLoadError(PluginError):
    pass


class IncompatiblePluginError(PluginError):
    pass


class PluginContractError(PluginError):
    """A plugin handed back something that breaks its contract; the message names the
    plugin, its distribution and the broken invariant (raised by the guards,
    :mod:`glmlab.plugin.guards`, and :func:`glmlab.plugin.base.check_base`)."""
