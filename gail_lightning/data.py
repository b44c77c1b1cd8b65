"""The expert demonstrations and the settings of on-policy collection, as a DataModule."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from tensordict import TensorDict

from gail_lightning.demonstrations import (
    DemoError,
    Demonstrations,
    check_compatible,
    load_demonstrations,
)
from gail_lightning.envs import VectorGymEnv, make_env
from gail_lightning.errors import UserInputError
from gail_lightning.evaluation import Evaluator
from gail_lightning.minari_io import PREFIX as MINARI_PREFIX
from gail_lightning.minari_io import from_minari
from gail_lightning.rollouts import Rollouts


class CollectorDataModule(L.LightningDataModule):
    """The demonstrations, and the ``Rollouts`` that serve the training batches.

    The envs step on the CPU, in ``num_workers`` processes beside the learner, each with a
    CPU copy of the module's actor that takes its weights with every batch request, so the
    networks may train on a GPU while collection stays on the CPU.

    Args:
        env_id: gymnasium id of a continuous-control env, e.g. ``Hopper-v5``.
        env_kwargs: keyword arguments of ``gymnasium.make(env_id, ...)``, e.g. the
            ``include_*_in_observation`` flags of Humanoid-v5; demonstrations must be
            recorded with the same ones. ``None``: the ones ``demos`` records (none without).
        demos: path of a demonstration file (``.npz``), or ``minari:<folder-or-id>`` for a
            local Minari dataset; ``None`` when training an expert.
        num_trajectories: use the first N episodes of ``demos`` (``None``: all of them).
        subsample: use every k-th expert (s, a) pair of each episode (Ho & Ermon used 20).
        frames_per_batch: env frames per training batch (summed over envs; per rank under DDP).
        total_frames: env frames after which training stops (summed over DDP ranks).
        num_envs: env copies stepped together by each worker.
        num_workers: collector processes, each stepping ``num_envs`` envs with its own seeds
            and collecting ``frames_per_batch / num_workers`` frames of each batch; 0
            collects in the training process. ``frames_per_batch`` must be a multiple of
            ``num_workers * num_envs``.
        overlap: collect batch k+1 while the learner updates on batch k (needs a worker
            process): batch k+1 is then collected by the weights before that update, one
            update behind, always, and PPO's clip is taken around the policy each update
            starts from (``ppo.PPOLoss``). ``False``: every batch by the current weights,
            as in the paper.
        seed: seed of the envs; the CLI also seeds torch with it.
        val_episodes: deterministic episodes run by ``validate`` (and once when ``fit`` ends).
    """

    def __init__(
        self,
        env_id: str = "Hopper-v5",
        env_kwargs: dict[str, Any] | None = None,
        demos: str | None = None,
        num_trajectories: int | None = None,
        subsample: int = 1,
        frames_per_batch: int = 2048,
        total_frames: int = 1_000_000,
        num_envs: int = 1,
        num_workers: int = 1,
        overlap: bool = True,
        seed: int = 0,
        val_episodes: int = 10,
    ) -> None:
        super().__init__()
        if min(frames_per_batch, total_frames, num_envs, val_episodes, subsample) <= 0 or num_workers < 0:
            raise UserInputError(
                "--data.frames_per_batch, total_frames, num_envs, val_episodes and subsample must "
                "be > 0, and num_workers >= 0."
            )
        envs = num_envs * max(1, num_workers)
        if frames_per_batch % envs:
            raise UserInputError(
                f"frames_per_batch ({frames_per_batch}) must be a multiple of num_envs x num_workers "
                f"({num_envs} x {max(1, num_workers)} = {envs})."
            )
        if overlap and num_workers == 0:
            raise UserInputError(
                "--data.overlap true collects beside the learner in a worker process: set "
                "--data.num_workers 1 (or more), or --data.overlap false."
            )
        self.save_hyperparameters()
        self.env_id = env_id
        recorded = self._read_demos() if demos is not None else None
        if env_kwargs is None:  # the demos say how their env was made
            same_env = recorded is not None and recorded.metadata["env_id"] == env_id
            env_kwargs = recorded.metadata.get("env_kwargs", {}) if same_env else {}
        self.env_kwargs = self.hparams["env_kwargs"] = env_kwargs  # checkpoints hold the options used
        probe = self.make_env()
        self.obs_dim: int = probe.observation_spec["observation"].shape[-1]
        self.action_low: list[float] = probe.action_spec.space.low[0].tolist()
        self.action_high: list[float] = probe.action_spec.space.high[0].tolist()
        probe.close()
        self.demonstrations = self._select(recorded) if recorded is not None else None
        self.expert: TensorDict | None = (
            self.demonstrations.to_tensordict(subsample) if self.demonstrations is not None else None
        )
        self.total_frames = total_frames
        self.frames_per_batch = frames_per_batch
        self.rollouts = Rollouts(env_id, self.env_kwargs, num_envs, frames_per_batch, num_workers, overlap)
        self.evaluator = Evaluator(self.make_env)
        self._resume_state: dict[str, Any] | None = None

    def _read_demos(self) -> Demonstrations:
        path = str(self.hparams.demos)
        if path.startswith(MINARI_PREFIX):
            return from_minari(path[len(MINARI_PREFIX):])
        return load_demonstrations(path)

    def _select(self, demos: Demonstrations) -> Demonstrations:
        """The first ``num_trajectories`` episodes, once the demos are known to fit the env."""
        path, n = self.hparams.demos, self.hparams.num_trajectories
        check_compatible(demos, path, self.env_id, self.env_kwargs, self.obs_dim, len(self.action_low))
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

    def train_dataloader(self) -> Rollouts:
        """Endless rollouts: the module stops the run once ``total_frames`` are seen.

        Stopping on frames rather than on a collector budget lets ``fit --ckpt_path last``
        resume (or extend) a run: the restored frame counter, not the epoch count, decides
        what is left.
        """
        module, rank = self.trainer.lightning_module, self.trainer.global_rank
        seed = self.hparams.seed + int(module.frames) + 1_000_000 * rank  # DDP: own envs per rank
        if rank > 0:
            torch.manual_seed(seed)  # own minibatches and expert samples per rank
        self.rollouts.start(module.actor, seed)
        if self._resume_state is not None:
            self._restore(self._resume_state)
            self._resume_state = None
        return self.rollouts

    def teardown(self, stage: str) -> None:
        self.rollouts.close()
        self.evaluator.close()

    def make_env(self, num_envs: int = 1, seed: int | None = None) -> VectorGymEnv:
        """This run's env (``env_id`` with ``env_kwargs``), ``num_envs`` copies stepped together."""
        return make_env(self.env_id, num_envs, seed=seed, env_kwargs=self.env_kwargs)

    def state_dict(self) -> dict[str, Any]:
        """Where collection stands: the workers' envs and generators, the batch in flight,
        and this process's torch RNG.

        With these a resumed run collects exactly the batches the interrupted run would have.
        The torch RNG is here, not with the module, because it must be set after the
        workers are built: building an in-process collector runs the policy once, which
        draws actions.
        """
        state = self.rollouts.state_dict()
        return {**state, "torch_rng": torch.get_rng_state()} if state else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume_state = state or None

    def _restore(self, state: dict[str, Any]) -> None:
        if self.trainer.world_size > 1:
            rank_zero_warn("Under DDP the checkpoint holds rank 0's envs only: every rank starts fresh episodes.")
            return
        if "workers" not in state:
            raise UserInputError(
                "This checkpoint holds collection state from before rollout workers (2026-12-03); "
                "resume it with that version of gail_lightning, or start a new run."
            )
        if any(worker["envs"] is None for worker in state["workers"]):
            rank_zero_warn(f"{self.env_id} is not a MuJoCo env: the resumed run starts fresh episodes.")
        self.rollouts.load_state_dict(state)
        torch.set_rng_state(state["torch_rng"])

    def val_dataloader(self) -> list[int]:
        """One item per validation episode: the seed of its env reset."""
        first = self.hparams.seed + 20_000
        return list(range(first, first + self.hparams.val_episodes))
