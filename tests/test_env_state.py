"""Env snapshots for exact resume, and the guard against simulation blow-ups."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDictBase
from torchrl.envs import EnvBase

from gail_lightning.env_state import restore, snapshot
from gail_lightning.envs import SimulationGuard, make_env


def instabilities(env) -> int:
    return sum(g.instabilities for g in env.gym_envs)


def play(
    env: EnvBase, td: TensorDictBase, actions: list[torch.Tensor]
) -> tuple[list[TensorDictBase], TensorDictBase]:
    """Step ``env`` from ``td`` with fixed actions, resetting ended episodes as a collector
    does; returns what each step saw and where the envs ended."""
    seen = []
    for action in actions:
        td["action"] = action
        stepped, td = env.step_and_maybe_reset(td)
        seen.append(stepped["next"].select("observation", "reward", "done").clone())
    return seen, td


@pytest.mark.parametrize(("env_id", "num_envs"), [("Hopper-v5", 1), ("Ant-v5", 2)])
def test_restored_envs_replay_the_same_steps(env_id, num_envs):
    # Ant's reward reads body positions derived in the previous substep: restoring only
    # the integration state changes it; the whole MjData must come back.
    env = make_env(env_id, num_envs, seed=0)
    torch.manual_seed(0)
    _, start = play(env, env.reset(), [env.action_spec.rand() for _ in range(15)])
    state = snapshot(env)
    actions = [env.action_spec.rand() for _ in range(60)]  # long enough to reach resets
    first, _ = play(env, start.clone(), actions)
    play(env, start.clone(), [env.action_spec.rand() for _ in range(7)])  # move on ...
    restore(env, state)  # ... and rewind
    again, _ = play(env, start.clone(), actions)
    assert torch.stack(first).get("done").any(), "no episode ended: resets untested"
    for a, b in zip(first, again):
        assert (a == b).all()


@pytest.mark.parametrize(("field", "value"), [("qvel", 1e12), ("qpos", np.nan)])
def test_simulation_blow_up_ends_the_episode_and_is_counted(field, value):
    env = make_env("Hopper-v5", seed=0)
    td = env.reset()
    td["action"] = env.action_spec.zero()
    stepped, td = env.step_and_maybe_reset(td)
    assert not stepped["next", "done"].any() and instabilities(env) == 0
    getattr(env.gym_envs[0].unwrapped.data, field)[:] = value  # MuJoCo will reset itself
    td["action"] = env.action_spec.zero()
    stepped, td = env.step_and_maybe_reset(td)
    assert stepped["next", "truncated"].all() and stepped["next", "reward"].item() == 0.0
    assert torch.isfinite(stepped["next", "observation"]).all()
    assert instabilities(env) == 1
    td["action"] = env.action_spec.zero()
    stepped, _ = env.step_and_maybe_reset(td)  # the fresh episode steps normally
    assert not stepped["next", "done"].any() and instabilities(env) == 1


def test_simulation_guard_checks_non_mujoco_envs_for_non_finite_values():
    env = SimulationGuard(gym.make("Pendulum-v1"))
    env.reset(seed=0)
    env.unwrapped.state = np.array([np.nan, 0.0])
    obs, reward, _, truncated, _ = env.step(np.zeros(1, dtype=np.float32))
    assert truncated and reward == 0.0 and np.isfinite(obs).all() and env.instabilities == 1
