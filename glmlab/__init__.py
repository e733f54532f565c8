"""glmlab: plugin-based objective and architecture ablations of GLM."""

from glmlab.plugin.hookspecs import API_VERSION, hookimpl

__all__ = ["API_VERSION", "__version__", "hookimpl"]
__version__ = "0.1.0"
