"""On-disk cache location and keys (writes go through :func:`glmlab.io.atomic_write`).

The cache holds derived artefacts only (parsed corpora, trained tokenizers, tokenized
example sets), each under a key that hashes everything it was derived from, so deleting
the directory is always safe. Writes go to a temporary file in the same directory and are
then ``os.replace``-d into place: concurrent runs (e.g. a sweep launched in parallel) may
race to build the same entry, but a reader never sees a half-written file. Temp files a
killed process left behind are removed once they are an hour old
(:func:`clean_cache_temps`); a zero-byte or damaged entry is rebuilt by its reader.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["STALE_TEMP_AGE_S", "cache_dir", "cache_key", "clean_cache_temps"]

# A temp file this old in the cache was left by a killed write (no write takes an hour).
STALE_TEMP_AGE_S = 3600.0


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


def clean_cache_temps(max_age_s: float = STALE_TEMP_AGE_S) -> int:
    """Remove the temp files of killed writes, older than ``max_age_s``, from the cache's
    folders (corpora, tokenizers, examples); return how many were removed."""
    from glmlab.io import clean_stale_temps

    root = cache_dir()
    folders = [root / "corpora", *root.glob("tokenizers/*"), *root.glob("examples/*")]
    return sum(len(clean_stale_temps(f, older_than_s=max_age_s)) for f in folders if f.is_dir())
