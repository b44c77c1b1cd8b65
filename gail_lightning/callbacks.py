"""Evaluation against the expert's score, and a progress bar counted in env frames."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from tensorboard.compat.proto.summary_pb2 import Summary
from torchmetrics.aggregation import MeanMetric

from gail_lightning.errors import UserInputError
from gail_lightning.video import render_episode, write_video


class ExpertScore(L.Callback):
    """Every ``eval_every_frames`` frames (and after the last batch), run deterministic episodes.

    Logs ``eval/return`` and, when the demonstrations carry expert and random returns,
    ``eval/normalized_score`` = (R − R_random) / (R_expert − R_random): 1 is the expert,
    0 is a uniformly random policy. Every evaluation is also appended to
    ``<default_root_dir>/eval_history.json`` (kept across resumes).

    Args:
        eval_every_frames: env frames between evaluations.
        episodes: evaluation episodes per evaluation.
        seed_offset: episode i of evaluation k resets its env with seed
            data seed + seed_offset + k * episodes + i.
        video: also film each evaluation's first episode (its first ``video_steps`` steps,
            every 2nd frame): ``<default_root_dir>/videos/eval_<frames>.gif`` and the
            TensorBoard image ``eval/video``. Offscreen rendering costs about 0.1 s a frame
            on a CPU (``video.py`` says how MuJoCo renders headless).
        video_steps: steps filmed per evaluation.
    """

    def __init__(
        self, eval_every_frames: int = 50_000, episodes: int = 5, seed_offset: int = 10_000,
        video: bool = False, video_steps: int = 400,
    ) -> None:
        if eval_every_frames <= 0 or episodes <= 0:
            raise UserInputError("--eval.eval_every_frames and --eval.episodes must be > 0.")
        self.eval_every_frames = eval_every_frames
        self.episodes = episodes
        self.seed_offset = seed_offset
        self.video, self.video_steps = video, video_steps
        self.mean_return = MeanMetric(sync_on_compute=False)  # rank 0 alone evaluates
        self.history: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        frames = int(pl_module.frames)
        step = pl_module.frames_per_batch * trainer.world_size  # frames counts every rank's
        crossed = frames // self.eval_every_frames > (frames - step) // self.eval_every_frames
        if crossed or frames >= pl_module.total_frames:
            self.evaluate(trainer, pl_module)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        mean_return = trainer.strategy.broadcast(  # rank 0 runs the episodes, DDP ranks share its score
            self._mean_return(trainer.datamodule.hparams.seed, pl_module) if trainer.is_global_zero else None
        )
        metrics = {"eval/return": mean_return}
        score = pl_module.normalized_score(metrics["eval/return"])
        if score is not None:
            metrics["eval/normalized_score"] = score
        # Logged for the progress bar and ModelCheckpoint's monitor; Lightning repeats a step
        # metric on every later step of the epoch, so the exact record is eval_history.json.
        pl_module.log_dict({k: torch.tensor(v) for k, v in metrics.items()}, prog_bar=True, batch_size=1)
        self.history.append({"frames": int(pl_module.frames), **metrics})
        if trainer.is_global_zero:
            path = Path(trainer.default_root_dir) / "eval_history.json"
            path.parent.mkdir(parents=True, exist_ok=True)  # no checkpoint or log made it yet
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(self.history, indent=1))
            tmp.replace(path)
            if self.video:
                self._film(trainer, pl_module)
        return metrics

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.video and trainer.is_global_zero:  # fail now, not at the first evaluation
            try:
                render_episode(pl_module.actor, trainer.datamodule.env_id, trainer.datamodule.env_kwargs,
                               max_steps=1, size=16)
            except Exception as err:  # noqa: BLE001 -- GL and env errors come in many types
                raise UserInputError(
                    f"--eval.video true cannot render {trainer.datamodule.env_id} here ({type(err).__name__}: "
                    f"{err}); set MUJOCO_GL=egl or osmesa (docs: gail_lightning/video.py), or --eval.video false."
                ) from None

    def _film(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The evaluation's first episode as a GIF in the run folder and in TensorBoard."""
        data, frames = trainer.datamodule, int(pl_module.frames)
        seed = data.hparams.seed + self.seed_offset + (len(self.history) - 1) * self.episodes
        try:
            shots = render_episode(pl_module.actor, data.env_id, data.env_kwargs, seed, self.video_steps)
            path = write_video(shots, Path(trainer.default_root_dir) / "videos" / f"eval_{frames}.gif")
        except Exception as err:  # noqa: BLE001 -- a lost video must not end the run
            rank_zero_warn(f"--eval.video: filming at {frames} frames failed ({err}); no more videos this run.")
            self.video = False
            return
        # A GIF as an image summary, which TensorBoard animates: add_video needs moviepy.
        if isinstance(trainer.logger, TensorBoardLogger):
            height, width, _ = shots[0].shape
            image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=path.read_bytes())
            trainer.logger.experiment.file_writer.add_summary(
                Summary(value=[Summary.Value(tag="eval/video", image=image)]), frames)

    def _mean_return(self, seed: int, pl_module: L.LightningModule) -> float:
        # Evaluation k's episodes have seeds of their own: a score depends only on the
        # weights and the evaluation's index, not on earlier evaluations or processes.
        first = seed + self.seed_offset + len(self.history) * self.episodes
        self.mean_return.reset()
        for value in pl_module.evaluator.returns(pl_module.actor, first, self.episodes):
            self.mean_return.update(value)
        return self.mean_return.compute().item()

    def state_dict(self) -> dict[str, list[dict[str, float]]]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, list[dict[str, float]]]) -> None:
        self.history = list(state_dict["history"])


class FramesProgressBar(TQDMProgressBar):
    """Training bar in env frames out of ``data.total_frames`` rather than in batches.

    Set up on train start as well: a run resumed mid-epoch skips ``on_train_epoch_start``.
    The bar starts at the restored frame count, so its rate counts this sitting only.
    """

    def on_train_start(self, trainer: L.Trainer, *args) -> None:
        super().on_train_start(trainer, *args)
        self._count_frames(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        self._count_frames(trainer)

    def _count_frames(self, trainer: L.Trainer) -> None:
        bar = self.train_progress_bar
        bar.reset(total=trainer.lightning_module.total_frames)
        bar.set_description(f"Epoch {trainer.current_epoch}")
        bar.unit = "frames"
        bar.initial = bar.n = int(trainer.lightning_module.frames)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, int | str]:
        """A short postfix: the latest training episodes' return, the latest evaluation's
        score (its return without demonstrations), the BC loss, and simulation blow-ups
        once there are any. Frames are the bar's own count, frames/s its rate."""
        metrics = super().get_metrics(trainer, pl_module)
        shown: dict[str, int | str] = {}
        for key, name, form in (("train/episode_return", "return", ".0f"), ("eval/return", "eval", ".0f"),
                                ("eval/normalized_score", "eval", ".2f"), ("loss/bc", "bc_loss", ".3f")):
            if key in metrics:
                shown[name] = format(float(metrics[key]), form)
        if float(metrics.get("train/sim_instabilities", 0)) > 0:
            shown["sim_blowups"] = int(float(metrics["train/sim_instabilities"]))
        return shown

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        self.train_progress_bar.n = int(pl_module.frames)
        self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))
        self.train_progress_bar.refresh()


class GracefulStop(L.Callback):
    """SIGTERM or Ctrl-C ends the run at the end of the current batch, exit code 0.

    The run stops at a batch boundary, ``LastCheckpoint`` saves it as training ends, and
    ``fit --ckpt_path last`` continues it. Lightning's own SIGTERM handling exits with
    code 1, and a plain Ctrl-C interrupts mid-update. A second Ctrl-C stops at once.
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, object] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._previous[sig] = signal.signal(sig, self._request)

    def _request(self, signum: int, frame: object) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name
        print(f"\n{self.requested} received: finishing this batch, saving last.ckpt, stopping.",
              file=sys.stderr, flush=True)

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        # Under DDP a signal may reach one rank only: any rank's request stops them all.
        if trainer.strategy.reduce_boolean_decision(self.requested is not None, all=False):
            trainer.should_stop = True
            trainer.limit_val_batches = 0  # no final validation on the way out

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
