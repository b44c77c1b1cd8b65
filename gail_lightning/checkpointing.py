"""Checkpoint files that are either the old version or the new one, never half-written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes ``<path>.tmp`` and renames it over ``path``.

    Lightning's own writer opens the final path directly, so a crash or a kill during the
    write leaves a truncated ``last.ckpt`` that a resume would then fail to load.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


class LastCheckpoint(ModelCheckpoint):
    """Writes ``last.ckpt`` after every batch, whatever the run monitors.

    Under manual optimization Lightning defers a ``ModelCheckpoint`` save until its
    monitored metric exists, so the best-checkpoint saver writes nothing before the first
    evaluation, and a run killed before then would be lost. This one monitors nothing.
    """

    def __init__(self, dirpath: _PATH) -> None:
        super().__init__(dirpath=dirpath, save_top_k=0, save_last=True, every_n_train_steps=1)
