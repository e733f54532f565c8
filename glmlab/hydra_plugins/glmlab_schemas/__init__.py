"""Stores glmlab's config schemas in Hydra's ConfigStore whenever Hydra starts.

Hydra imports every module of the ``hydra_plugins`` namespace package before it composes a
config, so this one makes glmlab's ``conf/`` compose however it is reached: through
``glmlab.conf`` (which registers them too), or as a plain directory
(``initialize_config_dir``, ``--config-dir``) with nothing of glmlab imported first.
"""

from glmlab.config.schema import register_schemas
from glmlab.ladder.plugin import store_config

register_schemas()
store_config()  # hydra/sweeper/glmlab_ladder, which the ladder files (conf/ladder/) select

# conf/config.yaml picks glmlab's local launcher (hydra/launcher=glmlab_local) and sweeper
# (hydra/sweeper=glmlab_basic): their configs must be in the store however conf/ is reached.
from glmlab.cluster.launcher import store_sweeper  # noqa: E402
from glmlab.cluster.local import register_config as register_local_launcher  # noqa: E402

register_local_launcher()
store_sweeper()
