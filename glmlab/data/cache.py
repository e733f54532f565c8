"""On-disk cache location and keys (writes go through :func:`glmlab.io.atomic_write`).

The cache holds derived artefacts only (parsed corpora, trained tokenizers, tokenized
example sets), each under a key that hashes everything it was derived from, so deleting
the directory is always safe. Writes go to a temporary file in the same directory and are
then ``os.replace``-d into place: concurrent runs (e.g. a sweep launched in parallel) may
race to build the same entry, but a reader never sees a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "cache_key"]


def cache_dir() -> Path:
    """The cache root: ``$GLMLAB_CACHE`` if set, else ``~/.cache/glmlab``; created on demand."""
    root = os.environ.get("GLMLAB_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "glmlab"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_key(*parts: Any, length: int = 16) -> str:
    """A short sha256 hex digest over JSON-serialisable ``parts`` (dict keys sorted)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:length]
