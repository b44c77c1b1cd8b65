"""Gymnasium MuJoCo environments through TorchRL, and episode rollouts on them."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
import torch
from tensordict import TensorDictBase
from torchrl.envs import (
    Compose,
    DoubleToFloat,
    EnvBase,
    RewardSum,
    SerialEnv,
    StepCounter,
    TransformedEnv,
)
from torchrl.envs.libs.gym import GymEnv
from torchrl.envs.utils import ExplorationType, set_exploration_type

from gail_lightning.errors import UserInputError


class EnvError(UserInputError):
    """An environment this trainer cannot use; the message says what to use instead."""


def check_env_id(env_id: str) -> gym.spaces.Box:
    """Return the action space of ``env_id`` after checking GAIL here can drive it."""
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as err:
        raise EnvError(
            f"Unknown environment id {env_id!r} ({err}). Use a registered gymnasium id "
            "such as 'Hopper-v5' or 'InvertedPendulum-v5'."
        ) from None
    env = gym.make(spec)
    try:
        action_space, obs_space = env.action_space, env.observation_space
    finally:
        env.close()
    if not isinstance(action_space, gym.spaces.Box):
        raise EnvError(
            f"{env_id} has a {type(action_space).__name__} action space; this trainer's "
            "Gaussian policy needs continuous (Box) actions. Use a continuous-control task "
            "such as the MuJoCo ones (Hopper-v5, Walker2d-v5, ...)."
        )
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise EnvError(
            f"{env_id} has observation space {obs_space}; use an env with flat vector "
            "observations (a 1-D Box)."
        )
    return action_space


def make_env(env_id: str, num_envs: int = 1, seed: int | None = None) -> TransformedEnv:
    """TorchRL env with float32 observations, step counts and episode returns.

    ``num_envs > 1`` steps copies in one process (``SerialEnv``): on few cores that beats
    worker processes, whose IPC costs more than a MuJoCo step.
    """
    check_env_id(env_id)
    base: EnvBase = GymEnv(env_id) if num_envs == 1 else SerialEnv(num_envs, lambda: GymEnv(env_id))
    env = TransformedEnv(base, Compose(DoubleToFloat(), StepCounter(), RewardSum()))
    if seed is not None:
        env.set_seed(seed)
    return env


@torch.no_grad()
def rollout_episodes(
    env: EnvBase,
    policy: Callable[[TensorDictBase], TensorDictBase] | None,
    episodes: int,
    deterministic: bool = True,
    max_steps: int = 100_000,
) -> list[TensorDictBase]:
    """Run ``episodes`` whole episodes one after another; ``policy=None`` acts at random."""
    mode = ExplorationType.DETERMINISTIC if deterministic else ExplorationType.RANDOM
    runs = []
    with set_exploration_type(mode):
        for _ in range(episodes):
            runs.append(
                env.rollout(max_steps, policy=policy, break_when_any_done=True, auto_reset=True)
            )
    return runs


def episode_return(episode: TensorDictBase) -> float:
    """Sum of the true env reward over one rollout."""
    return episode["next", "reward"].sum().item()
