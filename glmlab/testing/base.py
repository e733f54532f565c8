"""What every contract shares: which plugin is under test and how to build it."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import pytest
import torch

from glmlab.plugin.base import check_base
from glmlab.plugin.guards import plugin_label
from glmlab.plugin.registry import factory_arguments, get_registry


class PluginContract:
    """Base of the contract classes. A subclass named ``Test...`` sets:

    - ``name``: the plugin's registry name. The plugin is then looked up through the
      installed entry points, so the tests also prove that it registers; or
    - ``factory``: the factory itself, for a plugin that is not installed (yet);
    - ``options``: keyword arguments for the factory, as the plugin's config group gives them.
    """

    kind: ClassVar[str]
    name: ClassVar[str | None] = None
    factory: ClassVar[Callable[..., Any] | None] = None
    options: ClassVar[Mapping[str, Any]] = {}

    @classmethod
    def plugin(cls) -> tuple[Callable[..., Any], str]:
        """The factory under test and how messages name it."""
        if cls.name is not None:
            entry = get_registry().get(cls.kind, cls.name)
            return entry.factory, plugin_label(entry)
        # A function stored on a class would bind as a method: read it without binding.
        factory = inspect.getattr_static(cls, "factory")
        if isinstance(factory, staticmethod):
            factory = factory.__func__
        if factory is None:
            raise TypeError(f"{cls.__name__}: set `name` (registry name) or `factory`")
        return factory, f"{cls.kind} plugin {getattr(factory, '__qualname__', factory)!s}"

    @pytest.fixture(autouse=True)
    def _one_thread(self) -> Iterator[None]:
        """Contract tests use tiny tensors, where intra-op threads only add overhead (and
        spin for seconds on a busy machine): run each single-threaded."""
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)

    @property
    def label(self) -> str:
        return self.plugin()[1]

    def make(self, **settings: Any) -> Any:
        """Build the plugin as a run does: ``options``, plus the model ``settings`` of its
        kind that the factory declares (checked by signature first,
        :func:`glmlab.plugin.registry.factory_arguments`); what it builds must derive from
        its kind's base (:func:`glmlab.plugin.base.check_base`)."""
        factory, label = self.plugin()
        kwargs = factory_arguments(factory, settings, self.options, label=label)
        built = factory(**kwargs)
        check_base(self.kind, built, label)
        return built
