"""Vectorized collection: each env copy's episodes stay separate and correctly flagged."""

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


def test_env_kwargs_reach_gymnasium_and_bad_ones_are_named():
    joints_only = {f"include_{part}_in_observation": False for part in ("cinert", "cvel", "qfrc_actuator", "cfrc_ext")}
    data = CollectorDataModule(env_id="Humanoid-v5", env_kwargs=joints_only, num_envs=2, frames_per_batch=2)
    assert data.obs_dim == 45  # 348 with the defaults
    assert data.make_env(num_envs=2).observation_spec["observation"].shape == (2, 45)
    with pytest.raises(EnvError, match="does not take env_kwargs .*no_such_option"):
        CollectorDataModule(env_id="Hopper-v5", env_kwargs={"no_such_option": 1})
