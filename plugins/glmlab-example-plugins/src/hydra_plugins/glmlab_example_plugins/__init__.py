"""Adds this package's config groups to the search path of every Hydra app, glmlab's
included: ``python -m glmlab positional=alibi objective=spanbert`` then finds them.

Hydra imports every module under the ``hydra_plugins`` namespace package and uses the
``SearchPathPlugin`` subclasses it finds there.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class GlmlabExamplePluginsSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        # Only glmlab's app: other Hydra apps in this environment keep their own groups.
        if any(element.path == "pkg://glmlab.conf" for element in search_path.get_path()):
            search_path.append(
                provider="glmlab-example-plugins", path="pkg://glmlab_example_plugins.conf"
            )
