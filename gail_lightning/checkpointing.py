"""Checkpoint files that are either the old version or the new one, never half-written."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from gail_lightning.errors import UserInputError
from gail_lightning.settings import upgrade_hparams


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


def resume_checkpoint(ckpt_path: str | None, last_dir: Path) -> tuple[Path, dict] | None:
    """The file ``--ckpt_path`` names and its contents, or a one-line error naming the file
    and the fix when it is missing, unreadable or truncated, or not a checkpoint. None when
    there is nothing to check (no path; ``last`` before any ``last.ckpt``: a fresh start)."""
    if ckpt_path is None or ckpt_path in ("best", "hpc", "registry"):
        return None
    path = last_dir / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if ckpt_path == "last" and not path.exists():
        return None  # Lightning says it starts from scratch
    if not path.is_file():
        raise UserInputError(f"--ckpt_path {path}: no such file; pass a checkpoint file or --ckpt_path last.")
    try:  # as LightningCLI reads it
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 -- torch raises many types for a damaged or foreign file
        raise UserInputError(
            f"{path} cannot be read as a checkpoint ({type(err).__name__}: it is truncated, damaged "
            f"or another kind of file); {_fallback(path)}"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserInputError(f"{path} is not a Lightning checkpoint; {_fallback(path)}")
    return path, checkpoint


def check_resumable(path: Path, checkpoint: dict, model_class: str, env_id: str,
                    state_dict: dict[str, torch.Tensor] | None = None,
                    optimizers: list[torch.optim.Optimizer] | None = None) -> None:
    """Refuse, in one line, a checkpoint of another model class (a class path: compared by
    class name, as ``gail_lightning.X`` and ``gail_lightning.module.X`` are one class), env,
    or (given this run's ``state_dict`` and ``optimizers``) network shape or optimizers."""
    hparams = checkpoint.get("hyper_parameters", {})
    theirs = upgrade_hparams(hparams).get("_class_path", "").rsplit(".", 1)[-1] if hparams else ""
    ours = model_class.rsplit(".", 1)[-1]
    if theirs and theirs != ours:
        raise UserInputError(
            f"{path} holds a {theirs}, this run trains a {ours}; pass --model {theirs} (or its "
            f"config) or a {ours} checkpoint."
        )
    trained_on = checkpoint.get("datamodule_hyper_parameters", {}).get("env_id")
    if trained_on and trained_on != env_id:
        raise UserInputError(
            f"{path} was trained on {trained_on}, this run uses {env_id}; pass --data.env_id "
            f"{trained_on} (or its config) or a checkpoint of {env_id}."
        )
    for key, value in checkpoint["state_dict"].items():
        if state_dict is not None and key in state_dict and value.shape != state_dict[key].shape:
            raise UserInputError(
                f"{path} has {key} of shape {tuple(value.shape)}, this run's is {tuple(state_dict[key].shape)}: "
                "its observation or action size or its network settings (--model.hidden_sizes, "
                "--model.disc.hidden_sizes, --model.absorbing, --model.reward) differ; resume with the settings it was trained with."
            )
    if optimizers is not None and "optimizer_states" in checkpoint:
        ours = [[len(group["params"]) for group in opt.param_groups] for opt in optimizers]
        theirs = [[len(group["params"]) for group in state["param_groups"]] for state in checkpoint["optimizer_states"]]
        if theirs[: len(ours)] != ours:  # Lightning leaves out states past this run's optimizers
            raise UserInputError(
                f"{path} holds the optimizers of an older version of this project, which cannot resume "
                "training; start afresh (its policy still evaluates and records demos)."
            )


def _fallback(path: Path) -> str:
    """The fix for an unusable checkpoint: the newest intact one beside it, if any."""
    for other in sorted(path.parent.glob("*.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True):
        if other != path:
            try:
                if "state_dict" in torch.load(other, map_location="cpu", weights_only=True):
                    return f"resume from the newest intact checkpoint beside it: --ckpt_path {other}"
            except Exception:  # noqa: BLE001, S112 -- damaged too: try the next one
                continue
    return "pass another checkpoint, or start afresh without --ckpt_path."
