"""On-policy batches from a TorchRL collector, and the expert demonstrations, as a DataModule."""

from __future__ import annotations

import copy
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_warn
from tensordict import TensorDict
from torch import nn
from torchrl.collectors import Collector
from torchrl.envs import TransformedEnv

from gail_lightning.demonstrations import (
    DemoError,
    Demonstrations,
    check_compatible,
    load_demonstrations,
)
from gail_lightning.env_state import instabilities, restore, snapshot
from gail_lightning.envs import make_env
from gail_lightning.errors import UserInputError
from gail_lightning.minari_io import PREFIX as MINARI_PREFIX
from gail_lightning.minari_io import from_minari


class CollectorDataModule(L.LightningDataModule):
    """Serves on-policy TensorDict batches collected with the module's current policy.

    The envs step on the CPU in this process, with a CPU copy of the module's actor
    (``policy``) that takes the actor's weights before every batch and evaluation, so the
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
        num_envs: env copies stepped together; ``frames_per_batch`` must be a multiple.
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
        seed: int = 0,
        val_episodes: int = 10,
    ) -> None:
        super().__init__()
        if min(frames_per_batch, total_frames, num_envs, val_episodes, subsample) <= 0:
            raise UserInputError(
                "--data.frames_per_batch, total_frames, num_envs, val_episodes and subsample must be > 0."
            )
        if frames_per_batch % num_envs:
            raise UserInputError(
                f"frames_per_batch ({frames_per_batch}) must be a multiple of num_envs ({num_envs})."
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
        self.action_low: list[float] = probe.action_spec.space.low.tolist()
        self.action_high: list[float] = probe.action_spec.space.high.tolist()
        probe.close()
        self.demonstrations = self._select(recorded) if recorded is not None else None
        self.expert: TensorDict | None = (
            self.demonstrations.to_tensordict(subsample) if self.demonstrations is not None else None
        )
        self.total_frames = total_frames
        self.collector: Collector | None = None
        self._policy: nn.Module | None = None
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

    def train_dataloader(self) -> Collector:
        """An endless collector: the module stops the run once ``total_frames`` are seen.

        Stopping on frames rather than on the collector's own budget lets
        ``fit --ckpt_path last`` resume (or extend) a run: the restored frame counter, not
        the epoch count, decides what is left.
        """
        module, rank = self.trainer.lightning_module, self.trainer.global_rank
        seed = self.hparams.seed + int(module.frames) + 1_000_000 * rank  # DDP: own envs per rank
        if rank > 0:
            torch.manual_seed(seed)  # own minibatches and expert samples per rank
        self.collector = self.make_collector(self.policy(module.actor), seed)
        if self._resume_state is not None:
            self._restore(self._resume_state)
            self._resume_state = None
        return self.collector

    def make_env(self, num_envs: int = 1, seed: int | None = None) -> TransformedEnv:
        """This run's env (``env_id`` with ``env_kwargs``), ``num_envs`` copies stepped together."""
        return make_env(self.env_id, num_envs, seed=seed, env_kwargs=self.env_kwargs)

    def make_collector(self, policy: nn.Module, seed: int) -> Collector:
        """An endless collector of ``frames_per_batch`` frames over ``num_envs`` seeded envs."""
        return Collector(
            self.make_env(self.hparams.num_envs, seed=seed),
            policy,
            frames_per_batch=self.hparams.frames_per_batch,
            auto_register_policy_transforms=False,  # the MLP policy needs no env transforms
        )

    def policy(self, actor: nn.Module) -> nn.Module:
        """The CPU copy of ``actor`` the envs are stepped with, holding ``actor``'s current weights.

        One small weight copy per batch, instead of moving every env step to the
        networks' device and back.
        """
        if self._policy is None:
            self._policy = copy.deepcopy(actor).cpu()
        else:
            self._policy.load_state_dict(actor.state_dict())
        return self._policy

    @property
    def instabilities(self) -> int:
        """Env steps cut short so far because the simulation blew up (see ``SimulationGuard``)."""
        return 0 if self.collector is None else instabilities(self.collector.env)

    def state_dict(self) -> dict[str, Any]:
        """Where collection stands: env states, the in-flight step and the torch RNG.

        With these a resumed run collects exactly the batch the interrupted run would have.
        The torch RNG is here, not with the module, because it must be set after the
        collector is built: building it runs the policy once, which draws actions.
        """
        if self.collector is None:
            return {}
        return {
            "envs": snapshot(self.collector.env),
            "carrier": self.collector._carrier.to_dict(),  # the step the collector resumes from
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume_state = state or None

    def _restore(self, state: dict[str, Any]) -> None:
        if self.trainer.world_size > 1:
            rank_zero_warn("Under DDP the checkpoint holds rank 0's envs only: every rank starts fresh episodes.")
            return
        if state["envs"] is None:
            rank_zero_warn(f"{self.env_id} is not a MuJoCo env: the resumed run starts fresh episodes.")
        else:
            saved = len(state["envs"])
            if saved != self.hparams.num_envs:
                raise UserInputError(
                    f"The checkpoint was collecting with {saved} envs but --data.num_envs is "
                    f"{self.hparams.num_envs}; resume with --data.num_envs {saved}."
                )
            restore(self.collector.env, state["envs"])
            carrier = self.collector._carrier
            carrier.update(TensorDict(state["carrier"], batch_size=carrier.batch_size))
        torch.set_rng_state(state["torch_rng"])

    def val_dataloader(self) -> list[int]:
        """One item per validation episode: the seed of its env reset."""
        first = self.hparams.seed + 20_000
        return list(range(first, first + self.hparams.val_episodes))
