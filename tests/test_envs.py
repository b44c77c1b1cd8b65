"""Vectorized collection: each env copy's episodes stay separate and correctly flagged."""

import subprocess
import sys

import pytest
import torch

from gail_lightning.data import CollectorDataModule
from gail_lightning.envs import EnvError
from gail_lightning.networks import RunningNorm, make_actor
from gail_lightning.rollouts import RolloutWorker


def test_vectorized_batch_keeps_every_envs_episodes_apart():
    torch.manual_seed(0)
    data = CollectorDataModule(env_id="Hopper-v5", frames_per_batch=2048, num_envs=8)
    actor = make_actor(RunningNorm(data.obs_dim), data.obs_dim, data.action_low, data.action_high, [32])
    worker = RolloutWorker("Hopper-v5", {}, 8, 2048, seed=0, actor=actor, own_process=False)
    batch, _ = worker.collect(actor.state_dict())  # [envs, steps]
    assert batch.batch_size == (8, 256)
    done = batch["next", "done"].squeeze(-1)
    assert done[:, :-1].sum() > 20, "too few episodes ended: resets untested"
    assert torch.equal(done, batch["next", "terminated"].squeeze(-1) | batch["next", "truncated"].squeeze(-1))
    going_on = ~done[:, :-1]
    # An env continues exactly where its last step left it, unless that step ended its episode ...
    assert torch.equal(batch["observation"][:, 1:][going_on], batch["next", "observation"][:, :-1][going_on])
    assert torch.equal(batch["step_count"][:, 1:][going_on], batch["next", "step_count"][:, :-1][going_on])
    assert torch.equal(batch["next", "step_count"], batch["step_count"] + 1)
    torch.testing.assert_close(  # the running return adds each step's reward
        batch["next", "episode_reward"], batch["episode_reward"] + batch["next", "reward"]
    )
    # ... and restarts from step 0, in a fresh random state, when it did.
    assert (batch["step_count"][:, 1:][~going_on] == 0).all()
    assert (batch["episode_reward"][:, 1:][~going_on] == 0).all()
    starts = batch["observation"][:, 1:][~going_on]
    assert torch.unique(starts, dim=0).shape[0] == starts.shape[0]
    # the episode's last observation stays its own: the reset wrote its start elsewhere
    assert (batch["next", "observation"][:, :-1][~going_on] != starts).any(-1).all()


def test_env_kwargs_reach_gymnasium_and_bad_ones_are_named():
    joints_only = {f"include_{part}_in_observation": False for part in ("cinert", "cvel", "qfrc_actuator", "cfrc_ext")}
    data = CollectorDataModule(env_id="Humanoid-v5", env_kwargs=joints_only, num_envs=2, frames_per_batch=2)
    assert data.obs_dim == 45  # 348 with the defaults
    assert data.make_env(num_envs=2).observation_spec["observation"].shape == (2, 45)
    with pytest.raises(EnvError, match="does not take env_kwargs .*no_such_option"):
        CollectorDataModule(env_id="Hopper-v5", env_kwargs={"no_such_option": 1})


def test_env_without_gymnasium_wrappers_steps_and_ends_episodes_as_gymnasium_does():
    """The fast path (simulator stepped directly, time limit kept by ``VectorGymEnv``) gives
    gymnasium's own transitions, and ends an episode at the limit as truncated, not terminated."""
    import gymnasium as gym
    import numpy as np

    from gail_lightning.envs import make_env

    limit = 30
    env = make_env("Hopper-v5", num_envs=1, seed=3, env_kwargs={"max_episode_steps": limit})
    assert env.time_limit == limit and not isinstance(env.gym_envs[0].env, gym.Wrapper)
    reference = gym.make("Hopper-v5", max_episode_steps=limit)
    obs, _ = reference.reset(seed=3)
    td = env.reset()
    torch.testing.assert_close(td["observation"][0], torch.as_tensor(obs, dtype=torch.float32))
    actions = np.random.default_rng(0).uniform(-0.05, 0.05, (limit, 3)).astype(np.float32)
    for step, action in enumerate(actions, start=1):
        obs, reward, terminated, truncated, _ = reference.step(action)
        td["action"] = torch.from_numpy(action)[None]
        out = env.step(td)["next"]
        torch.testing.assert_close(out["observation"][0], torch.as_tensor(obs, dtype=torch.float32))
        assert out["reward"].item() == pytest.approx(reward, rel=1e-6)
        assert (out["terminated"].item(), out["truncated"].item()) == (terminated, truncated)
        td = out
    assert truncated and not terminated and step == limit


def test_env_with_wrappers_of_its_own_is_stepped_through_them():
    """Only gymnasium's standard wrappers are skipped: any other stays, with the time limit."""
    from gail_lightning.envs import make_env

    env = make_env("Hopper-v5", env_kwargs={"render_mode": "rgb_array_list"})  # adds RenderCollection
    assert env.time_limit == 0
    assert type(env.gym_envs[0].env).__name__ == "RenderCollection"


def test_resets_after_a_step_give_what_torchrls_own_partial_reset_gives(monkeypatch):
    """``VectorGymEnv._step_and_maybe_reset`` resets done envs in numpy: the collected batches
    and the env's entries of the step the collector resumes from equal TorchRL's path."""
    from torchrl.envs import EnvBase

    from gail_lightning.envs import VectorGymEnv

    def collect() -> tuple[list, object]:
        torch.manual_seed(0)
        actor = make_actor(RunningNorm(11), 11, [-1.0] * 3, [1.0] * 3, [16])
        worker = RolloutWorker("Hopper-v5", {"max_episode_steps": 20}, 4, 400, seed=0, actor=actor, own_process=False)
        batches = [worker.collect(actor.state_dict())[0] for _ in range(2)]
        return batches, worker.collector._carrier.select(*worker.env.observation_spec.keys(), *worker.env.done_keys)

    ours, ours_next = collect()
    monkeypatch.setattr(VectorGymEnv, "_step_and_maybe_reset", EnvBase._step_and_maybe_reset)
    reference, reference_next = collect()
    assert ours[0]["next", "terminated"].sum() > 5 and ours[0]["next", "truncated"].sum() > 5
    for batch, expected in zip(ours, reference):
        assert set(batch.keys(True, True)) == set(expected.keys(True, True))
        assert (batch == expected).all()
    assert (ours_next == reference_next).all()


def test_mujoco_warnings_print_but_the_halfcheetah_models_deprecation():
    """settotalmass (gymnasium's HalfCheetah XML) is silenced; a blow-up's warning is not."""
    script = (
        "import numpy as np\n"
        "from gail_lightning.envs import make_env\n"
        "make_env('HalfCheetah-v5', num_envs=2, seed=0)\n"
        "env = make_env('Hopper-v5', seed=0).gym_envs[0].unwrapped\n"
        "env.reset(seed=0)\n"
        "env.data.qvel[:] = 1e12\n"
        "env.step(np.zeros(3, dtype=np.float32))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert "settotalmass" not in proc.stderr
    assert "WARNING: Nan, Inf or huge value in QVEL" in proc.stderr
