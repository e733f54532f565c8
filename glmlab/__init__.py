"""glmlab: plugin-based objective and architecture ablations of GLM."""

from importlib.metadata import version as _version

from glmlab.plugin.hookspecs import API_VERSION, hookimpl

__all__ = ["API_VERSION", "__version__", "hookimpl"]
__version__ = _version("glmlab")  # stated once, in pyproject.toml
