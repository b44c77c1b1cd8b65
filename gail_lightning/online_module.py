"""What every module trained on collector batches shares: frame budget, guarded updates,
episode metrics and the validation episode."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import lightning as L
import torch
from tensordict import TensorDictBase

from gail_lightning.distributed import mean_grads_, no_grad_sync, world_size
from gail_lightning.errors import TrainingDivergedError, UserInputError
from gail_lightning.evaluation import Evaluator
from gail_lightning.provenance import package_versions
from gail_lightning.rollouts import Rollouts

# Adam in one kernel per step instead of one per parameter: 0.08 ms against 0.24 for PPO's
# actor step on CPU, 80 times per batch (benchmarks/sac_update.py for SAC's).
FUSED_ADAM = {"fused": True, "foreach": None}


def fuse_saved_adam(checkpoint: dict) -> None:
    """Make a checkpoint's Adam states resume fused. A resumed optimizer keeps the
    implementation flags saved in its param groups, so checkpoints from before fused Adam
    (2026-12-03) would otherwise resume one kernel per parameter, ~6% of a SAC expert's time."""
    for saved in checkpoint.get("optimizer_states", []):
        for group in saved["param_groups"]:
            group.update(FUSED_ADAM)


class OnlineModule(L.LightningModule):
    """Base of ``GAILModule``, ``SACModule`` and ``BCModule``: manual optimization on
    rollout batches.

    Subclasses build ``self.actor`` (the policy the rollout workers run and evaluation
    scores) and write ``training_step``; they count frames in ``self.frames``, which
    decides when the run stops (``data.total_frames``) and when evaluation runs, and is
    saved in checkpoints. Under DDP every rank collects its own batches; ``update``
    averages the gradients over ranks and ``frames`` counts the frames of all ranks.

    ``setup`` links the DataModule's rollouts, evaluator, frame budget and batch size
    once; nothing reads the DataModule while training.
    """

    actor: torch.nn.Module
    rollouts: Rollouts
    evaluator: Evaluator

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.register_buffer("frames", torch.zeros((), dtype=torch.int64))
        self.total_frames: int | None = None
        self.frames_per_batch: int | None = None
        self.normalized_score: Callable[[float], float | None] = lambda episode_return: None

    def setup(self, stage: str) -> None:
        plugin = self.trainer.precision_plugin if self._trainer is not None else None
        if getattr(plugin, "scaler", None) is not None:
            raise UserInputError(
                f"--trainer.precision {self.trainer.precision} scales the loss with a GradScaler, which "
                "these manual updates (gradient clipping and finiteness checks per optimizer) do "
                "not unscale; use --trainer.precision bf16-mixed or 32-true."
            )
        data = self.trainer.datamodule if self._trainer is not None else None
        if data is not None:
            self.rollouts, self.evaluator = data.rollouts, data.evaluator
            self.total_frames, self.frames_per_batch = data.total_frames, data.frames_per_batch
            self.normalized_score = data.normalized_score

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["versions"] = package_versions()

    def on_train_batch_start(self, batch: TensorDictBase | None, batch_idx: int) -> int | None:
        if self.frames >= self.total_frames:
            self.trainer.should_stop = True
            return -1  # skip the epoch's remaining batches; should_stop ends the fit
        return None

    def next_batch(self, dataloader_iter) -> TensorDictBase:
        """The next rollout batch on this module's device.

        Taking the iterator (``training_step(dataloader_iter)``) makes Lightning skip its
        one-batch prefetch: the batch is requested here, after the previous update, with the
        current weights (``data.overlap`` requests the following one with them too).
        """
        self.rollouts.sync_weights(self.actor)
        batch, _, _ = next(dataloader_iter)
        return batch.to(self.device)

    def count_frames(self, frames: int) -> None:
        """Add ``frames`` collected by each rank; ask the trainer to stop once the budget is spent."""
        self.frames += frames * world_size()
        if self.frames >= self.total_frames:
            self.trainer.should_stop = True

    def validation_step(self, seed: int, batch_idx: int) -> None:
        """One deterministic episode from a seeded reset; logs the mean over episodes."""
        value = self.evaluator.returns(self.actor, seed, episodes=1)[0]
        self.log("val/return", value, batch_size=1, sync_dist=True)  # under DDP ranks split the seeds
        score = self.normalized_score(value)
        if score is not None:
            self.log("val/normalized_score", score, batch_size=1, sync_dist=True)

    def episode_metrics(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        """Frames so far, simulation blow-ups so far, and the true env return and length of
        episodes that ended in the batch."""
        metrics = {
            "frames": self.frames.float(),
            "train/sim_instabilities": torch.tensor(float(self.rollouts.instabilities)),
        }
        done = batch["next", "done"].squeeze(-1)
        if done.any():
            metrics["train/episode_return"] = batch["next", "episode_reward"][done].mean()
            metrics["train/episode_length"] = batch["next", "step_count"][done].float().mean()
        return metrics

    def update(
        self, loss: torch.Tensor, name: str, *opts: torch.optim.Optimizer, max_grad_norm: float | None = None
    ) -> None:
        """One gradient step of ``opts`` on ``loss`` (gradients averaged over DDP ranks),
        refusing non-finite values; with ``max_grad_norm`` each optimizer's gradient is
        clipped on its own."""
        if not torch.isfinite(loss):
            self._diverged(name, loss.item())
        for opt in opts:
            opt.zero_grad()
        with no_grad_sync(self.trainer.model):
            self.manual_backward(loss)
        for opt in opts:
            params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
            mean_grads_(params)
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
            if not torch.isfinite(norm):
                self._diverged(f"gradient of the {name}", norm.item())
            if max_grad_norm is not None:
                torch.nn.utils.clip_grads_with_norm_(params, max_grad_norm, norm)
            opt.step()

    def _diverged(self, name: str, value: float) -> NoReturn:
        """Save the state that produced a non-finite value for inspection, then stop the run."""
        callback = self.trainer.checkpoint_callback
        folder = Path(callback.dirpath if callback and callback.dirpath else self.trainer.default_root_dir)
        path = folder / "diverged.ckpt"
        self.trainer.save_checkpoint(path)
        raise TrainingDivergedError(
            f"The {name} became {value} after {int(self.frames)} frames; the state is saved "
            f"in {path}. Lower the learning rates (--model.*_lr) or check the demonstrations."
        )
