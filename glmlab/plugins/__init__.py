"""glmlab's built-in plugins, importable as ``glmlab.plugins``.

Each module is registered through the ``glmlab`` entry-point group in pyproject.toml,
the same path a third-party plugin package uses.
"""
