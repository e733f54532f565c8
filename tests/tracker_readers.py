"""Read back what the built-in trackers logged, through each library's own reader:
TensorBoard's EventAccumulator, the MLflow client, and W&B's offline run files (records
in W&B's framed log format, decoded with wandb's own protobuf schema)."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Series = dict[str, list[tuple[int, float]]]


def tensorboard_scalars(log_dir: Path) -> Series:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def tensorboard_hparams(log_dir: Path) -> set[str]:
    """The hparams plugin's tags in ``log_dir`` (written when a run finishes)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    try:
        return set(acc.PluginTagToContent("hparams"))
    except KeyError:
        return set()


def mlflow_run(tracking_uri: str, run_id: str) -> tuple[Any, Series]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.get_run(run_id)
    series = {
        key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))
        for key in run.data.metrics
    }
    return run, series


def _wandb_records(path: Path) -> Iterator[bytes]:
    # W&B's transaction log: a 7-byte header (":W&B", magic, version), then LevelDB-style
    # log records in 32 KiB blocks: crc32 (4), length (2), type (1: full, 2-4: fragments).
    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if length == 0 and kind == 0:  # block padding
            pos += left
            continue
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            yield pending
            pending = b""


def wandb_offline(run_dir: Path, run_id: str) -> tuple[list[Any], Series, dict[str, Any]]:
    """(run records, history series, last summary) of every offline attempt of ``run_id``."""
    from wandb.proto import wandb_internal_pb2 as pb

    runs, series, summary = [], {}, {}
    # A second attempt in the same second gets the suffix -1, -2, ...
    files = sorted(run_dir.glob(f"wandb/offline-run-*-{run_id}*/run-{run_id}.wandb"))
    assert files, f"no offline W&B files for run {run_id} under {run_dir}/wandb"
    for path in files:
        for raw in _wandb_records(path):
            rec = pb.Record()
            rec.ParseFromString(raw)
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                runs.append(rec.run)
            elif kind == "history":
                items = {
                    i.key or "/".join(i.nested_key): json.loads(i.value_json)
                    for i in rec.history.item
                }
                step = int(items["_step"])
                for key, value in items.items():
                    if not key.startswith("_"):
                        series.setdefault(key, []).append((step, float(value)))
            elif kind == "summary":
                summary.update(
                    {u.key: json.loads(u.value_json) for u in rec.summary.update if u.key}
                )
    return runs, {k: sorted(v) for k, v in series.items()}, summary
