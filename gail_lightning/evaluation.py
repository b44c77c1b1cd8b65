"""Deterministic evaluation episodes: the one path behind fit-time scores and ``validate``."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torchrl.envs import EnvBase

from gail_lightning.envs import episode_return, rollout_episodes


class Evaluator:
    """Runs a CPU copy of the actor deterministically, one episode per seeded reset.

    Each episode's score depends only on the weights and its seed, not on how many episodes
    ran before it or in which process. The copy keeps the envs and their per-step work on the
    CPU when the networks train on a GPU.

    Args:
        make_env: builds the single env the episodes run in (built on first use).
    """

    def __init__(self, make_env: Callable[[], EnvBase]) -> None:
        self.make_env = make_env
        self._env: EnvBase | None = None
        self._actor: nn.Module | None = None

    @torch.no_grad()
    def returns(self, actor: nn.Module, seeds: Sequence[int]) -> list[float]:
        """The true env return of one deterministic episode of ``actor`` per seed."""
        if self._env is None:
            self._env = self.make_env()
            self._actor = copy.deepcopy(actor).cpu()
        self._actor.load_state_dict(actor.state_dict())
        # Outside mixed precision's autocast: the env takes float32 actions, not bfloat16.
        device = next(actor.parameters()).device.type
        with torch.autocast(device, enabled=False):
            scores = []
            for seed in seeds:
                self._env.set_seed(int(seed))
                scores.append(episode_return(rollout_episodes(self._env, self._actor, 1)[0]))
        return scores
