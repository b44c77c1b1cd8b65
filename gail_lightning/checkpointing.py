"""Checkpoint files that are either the old version or the new one, never half-written."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from gail_lightning.errors import UserInputError


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
    """Writes ``last.ckpt`` every ``every_seconds`` of training and when training ends,
    whatever the run monitors.

    Under manual optimization Lightning defers a ``ModelCheckpoint`` save until its
    monitored metric exists, so the best-checkpoint saver writes nothing before the first
    evaluation, and a run killed before then would be lost. This one monitors nothing.
    Timed rather than per batch because a save snapshots every env (0.1-0.2 s for 32
    Hopper envs): a crash loses at most ``every_seconds``, a SIGTERM or Ctrl-C nothing
    (the run ends at a batch boundary and this saves it).

    Args:
        dirpath: folder of ``last.ckpt`` (default: the ``--checkpoint.dirpath`` folder).
        every_seconds: seconds of training between saves; 0 saves after every batch.
    """

    def __init__(self, dirpath: _PATH | None = None, every_seconds: float = 60.0) -> None:
        if every_seconds < 0:
            raise UserInputError("--last_checkpoint.every_seconds must be >= 0.")
        super().__init__(dirpath=dirpath, save_top_k=0, save_last=True)
        self.every_seconds = every_seconds

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        # Lightning's own ``train_time_interval`` is ignored under manual optimization.
        now = time.monotonic()
        due = self._last_time_checked is None or now - self._last_time_checked >= self.every_seconds
        if trainer.strategy.broadcast(due):  # rank 0's clock decides, so ranks agree
            self._last_time_checked = now
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._last_global_step_saved != trainer.global_step:  # not already saved after the last batch
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
