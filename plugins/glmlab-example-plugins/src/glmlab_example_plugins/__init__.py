"""Example third-party glmlab plugins: a ``geometric`` span sampler (SpanBERT) and an
``alibi`` positional scheme (ALiBi). The config groups under ``conf/`` (``positional=alibi``,
``objective=spanbert``) reach glmlab's Hydra app through ``hydra_plugins``."""

__version__ = "0.1.0"
