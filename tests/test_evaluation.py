"""Evaluation: the episodes of one evaluation run side by side, each scored as if alone."""

import pytest
import torch

from gail_lightning.envs import episode_return, make_env, rollout_episodes
from gail_lightning.evaluation import Evaluator
from gail_lightning.networks import RunningNorm, make_actor


def test_side_by_side_episodes_score_as_single_seeded_episodes():
    torch.manual_seed(0)
    # Hopper: its reward goes on changing after a fall, so steps past an episode's end show
    env_id, kwargs = "Hopper-v5", {"max_episode_steps": 300}
    probe = make_env(env_id, env_kwargs=kwargs)
    obs_dim = probe.observation_spec["observation"].shape[-1]
    low, high = probe.action_spec.space.low[0].tolist(), probe.action_spec.space.high[0].tolist()
    actor = make_actor(RunningNorm(obs_dim), obs_dim, low, high, [32], init_log_std=0.0)
    evaluator = Evaluator(lambda n: make_env(env_id, n, env_kwargs=kwargs))
    together = evaluator.returns(actor, first_seed=11, episodes=6)
    runs = [  # the episodes one at a time, as a single env runs them
        rollout_episodes(make_env(env_id, seed=seed, env_kwargs=kwargs), actor, 1)[0] for seed in range(11, 17)
    ]
    alone = [episode_return(run) for run in runs]
    assert len({run.numel() for run in runs}) > 1, "episodes equally long: scoring past an end goes untested"
    assert together == pytest.approx(alone, rel=1e-5)  # the sums differ in float rounding only
    assert evaluator.returns(actor, first_seed=11, episodes=6) == together  # repeatable
