"""On-policy batches from a TorchRL collector, and the expert demonstrations, as a DataModule."""

from __future__ import annotations

import lightning as L
from tensordict import TensorDict
from torchrl.collectors import Collector

from gail_lightning.demonstrations import (
    DemoError,
    Demonstrations,
    check_compatible,
    load_demonstrations,
)
from gail_lightning.envs import make_env
from gail_lightning.errors import UserInputError


class CollectorDataModule(L.LightningDataModule):
    """Serves on-policy TensorDict batches collected with the module's current policy.

    The collector is built around the LightningModule's own actor in this process, so
    every PPO update is seen by the next batch without copying weights.

    Args:
        env_id: gymnasium id of a continuous-control env, e.g. ``Hopper-v5``.
        demos: path of a demonstration file (``.npz``); ``None`` when training an expert.
        num_trajectories: use the first N episodes of ``demos`` (``None``: all of them).
        frames_per_batch: env frames per training batch (summed over envs).
        total_frames: env frames after which training stops.
        num_envs: env copies stepped together; ``frames_per_batch`` must be a multiple.
        seed: seed of the envs; the CLI also seeds torch with it.
        val_episodes: deterministic episodes run by ``validate`` (and once when ``fit`` ends).
    """

    def __init__(
        self,
        env_id: str = "Hopper-v5",
        demos: str | None = None,
        num_trajectories: int | None = None,
        frames_per_batch: int = 2048,
        total_frames: int = 1_000_000,
        num_envs: int = 1,
        seed: int = 0,
        val_episodes: int = 10,
    ) -> None:
        super().__init__()
        if min(frames_per_batch, total_frames, num_envs, val_episodes) <= 0:
            raise UserInputError(
                "--data.frames_per_batch, total_frames, num_envs and val_episodes must be > 0."
            )
        if frames_per_batch % num_envs:
            raise UserInputError(
                f"frames_per_batch ({frames_per_batch}) must be a multiple of num_envs ({num_envs})."
            )
        self.save_hyperparameters()
        probe = make_env(env_id)
        self.obs_dim: int = probe.observation_spec["observation"].shape[-1]
        self.action_low: list[float] = probe.action_spec.space.low.tolist()
        self.action_high: list[float] = probe.action_spec.space.high.tolist()
        probe.close()
        self.demonstrations = self._load_demos() if demos is not None else None
        self.expert: TensorDict | None = (
            self.demonstrations.to_tensordict() if self.demonstrations is not None else None
        )
        self.env_id = env_id
        self.total_frames = total_frames

    def _load_demos(self) -> Demonstrations:
        path, n = self.hparams.demos, self.hparams.num_trajectories
        demos = load_demonstrations(path)
        check_compatible(demos, path, self.hparams.env_id, self.obs_dim, len(self.action_low))
        if n is not None:
            if not 0 < n <= demos.num_episodes:
                raise DemoError(
                    f"--data.num_trajectories {n} but {path} holds {demos.num_episodes} "
                    f"episodes; pick 1..{demos.num_episodes}."
                )
            demos = demos.first(n)
        return demos

    @property
    def expert_return(self) -> float | None:
        return None if self.demonstrations is None else self.demonstrations.metadata["expert_return_mean"]

    @property
    def random_return(self) -> float | None:
        return None if self.demonstrations is None else self.demonstrations.metadata["random_return_mean"]

    def normalized_score(self, episode_return: float) -> float | None:
        """(R − R_random) / (R_expert − R_random) from the demonstrations; None without them."""
        if self.demonstrations is None:
            return None
        return (episode_return - self.random_return) / (self.expert_return - self.random_return)

    def train_dataloader(self) -> Collector:
        """An endless collector: the module stops the run once ``total_frames`` are seen.

        Stopping on frames rather than on the collector's own budget lets
        ``fit --ckpt_path last`` resume (or extend) a run: the restored frame counter, not
        the epoch count, decides what is left.
        """
        module = self.trainer.lightning_module
        env = make_env(self.env_id, self.hparams.num_envs, seed=self.hparams.seed + int(module.frames))
        return Collector(
            env,
            module.actor,
            frames_per_batch=self.hparams.frames_per_batch,
            auto_register_policy_transforms=False,  # the MLP policy needs no env transforms
        )

    def val_dataloader(self) -> list[int]:
        """One item per validation episode: the seed of its env reset."""
        first = self.hparams.seed + 20_000
        return list(range(first, first + self.hparams.val_episodes))
