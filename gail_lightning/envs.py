"""Gymnasium MuJoCo environments through TorchRL, and episode rollouts on them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch
from tensordict import TensorDictBase
from torchrl.envs import (
    Compose,
    DoubleToFloat,
    EnvBase,
    RewardSum,
    StepCounter,
    TransformedEnv,
)
from torchrl.envs.libs.gym import GymWrapper
from torchrl.envs.utils import ExplorationType, set_exploration_type

from gail_lightning.errors import UserInputError


class EnvError(UserInputError):
    """An environment this trainer cannot use; the message says what to use instead."""


def check_env_id(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> gym.spaces.Box:
    """Return the action space of ``env_id`` after checking GAIL here can drive it."""
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as err:
        raise EnvError(
            f"Unknown environment id {env_id!r} ({err}). Use a registered gymnasium id "
            "such as 'Hopper-v5' or 'InvertedPendulum-v5'."
        ) from None
    try:
        env = gym.make(spec, **(env_kwargs or {}))
    except TypeError as err:
        raise EnvError(
            f"{env_id} does not take env_kwargs {dict(env_kwargs or {})} ({err}). Use the "
            f"keyword arguments of its gymnasium constructor, or none."
        ) from None
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


class SimulationGuard(gym.Wrapper):
    """Ends an episode whose simulation blew up, instead of training on it.

    MuJoCo resets its state by itself when a position, velocity or acceleration becomes
    NaN, Inf or huge, and the step then reports a teleport and often a NaN reward. This
    wrapper turns such a step (or any step with a non-finite observation or reward) into
    a truncation with zero reward, so the collector resets the env, and counts it.
    """

    _BAD = tuple(int(w) for w in (mujoco.mjtWarning.mjWARN_BADQPOS,
                                  mujoco.mjtWarning.mjWARN_BADQVEL,
                                  mujoco.mjtWarning.mjWARN_BADQACC))

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.instabilities = 0
        data = getattr(env.unwrapped, "data", None)  # MuJoCo's MjData; None for other envs
        self._warnings = None if data is None else data.warning

    def step(self, action: np.ndarray) -> tuple:
        if self._warnings is not None:
            for kind in self._BAD:
                self._warnings[kind].number = 0
        obs, reward, terminated, truncated, info = self.env.step(action)
        unstable = self._warnings is not None and any(self._warnings[k].number for k in self._BAD)
        if unstable or not (np.isfinite(obs).all() and np.isfinite(reward)):
            self.instabilities += 1
            obs = np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
            return obs, 0.0, terminated, True, info
        return obs, reward, terminated, truncated, info


def make_env(
    env_id: str,
    num_envs: int = 1,
    seed: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> TransformedEnv:
    """TorchRL env with float32 observations, step counts and episode returns; each gym env
    is wrapped in ``SimulationGuard``. ``env_kwargs`` go to ``gymnasium.make``.

    ``num_envs > 1`` steps the copies in one process as one gymnasium ``SyncVectorEnv``, so
    TorchRL does its per-step TensorDict work once for the whole batch, not once per copy
    (2-3x the frames/s of ``SerialEnv`` here); worker processes cost more in IPC than a
    MuJoCo step on few cores. Autoreset is off: TorchRL resets the finished copies itself
    and keeps each episode's true last observation.
    """
    check_env_id(env_id, env_kwargs)

    def one() -> gym.Env:
        return SimulationGuard(gym.make(env_id, **(env_kwargs or {})))

    gym_env = one() if num_envs == 1 else gym.vector.SyncVectorEnv(
        [one] * num_envs, autoreset_mode=gym.vector.AutoresetMode.DISABLED
    )
    env = TransformedEnv(GymWrapper(gym_env), Compose(DoubleToFloat(), StepCounter(), RewardSum()))
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


def random_policy_return(
    env_id: str, episodes: int, seed: int, env_kwargs: Mapping[str, Any] | None = None
) -> float:
    """Mean true return of uniformly random actions: the 0 of the normalized score."""
    runs = rollout_episodes(make_env(env_id, seed=seed, env_kwargs=env_kwargs), None, episodes)
    return float(sum(episode_return(r) for r in runs) / len(runs))
