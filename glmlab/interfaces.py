"""Deprecated: moved (see :data:`glmlab.plugin.compat.MOVED_MODULES`; removed in glmlab
0.3.0, :data:`glmlab.plugin.compat.REMOVED_IN`)."""

from glmlab.plugin.compat import forward

__getattr__ = forward(__name__)
