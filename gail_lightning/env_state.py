"""Exact snapshot and restore of the training envs, so a resumed run continues bit for bit.

A snapshot holds, per gymnasium env: the whole MuJoCo ``MjData`` (pickled, compressed,
20-40 kB), the env's random generator, the instability count, and the episode's step count
(which the time limit counts) and return so far. The whole ``MjData`` and not just the integration state (``mj_getState``), because
rewards such as Ant's and Humanoid's read quantities derived from the previous substep
(body positions), which a restored state alone does not reproduce. Everything is stored
as tensors, ints and strings, so a checkpoint holding it loads with ``weights_only=True``.
"""

from __future__ import annotations

import pickle
import zlib
from typing import Any

import gymnasium as gym
import mujoco
import torch

from gail_lightning.envs import SimulationGuard, VectorGymEnv


def _find(env: gym.Env, kind: type) -> gym.Env | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, kind):
            return env
        env = env.env
    return None


def snapshot(env: VectorGymEnv) -> list[dict[str, Any]] | None:
    """The state of every gymnasium env under ``env``; None if they are not MuJoCo envs."""
    states = []
    for i, g in enumerate(env.gym_envs):
        sim = g.unwrapped
        if not hasattr(sim, "data"):
            return None
        physics = zlib.compress(pickle.dumps(sim.data))
        states.append({
            "physics": torch.frombuffer(bytearray(physics), dtype=torch.uint8),
            "np_random": sim.np_random.bit_generator.state,
            "instabilities": _find(g, SimulationGuard).instabilities,
            "step_count": int(env.step_counts[i]),
            "episode_return": float(env.returns[i]),
        })
    return states


def restore(env: VectorGymEnv, states: list[dict[str, Any]]) -> None:
    """Put back a ``snapshot`` into an env built the same way (same id and env count)."""
    for i, (g, state) in enumerate(zip(env.gym_envs, states, strict=True)):
        sim = g.unwrapped
        saved = pickle.loads(zlib.decompress(state["physics"].numpy().tobytes()))
        mujoco.mj_copyData(sim.data, sim.model, saved)  # in place: wrappers hold ``sim.data``
        sim.np_random.bit_generator.state = state["np_random"]
        if (limit := _find(g, gym.wrappers.TimeLimit)) is not None:  # an env with its own wrappers
            limit._elapsed_steps = state["step_count"]  # the time limit counts the episode's steps
        _find(g, SimulationGuard).instabilities = state["instabilities"]
        env.step_counts[i] = state["step_count"]
        env.returns[i] = state["episode_return"]
