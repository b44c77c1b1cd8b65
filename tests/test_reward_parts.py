"""The reward split: each episode's parts add up to the return the evaluations score."""

from pathlib import Path

import gymnasium as gym
import pytest

from benchmarks import reward_parts
from gail_lightning.demos import load_policy
from gail_lightning.envs import make_env
from gail_lightning.evaluation import Evaluator

ROOT = Path(__file__).resolve().parents[1]


def test_parts_sum_to_the_evaluators_return_episode_by_episode():
    ckpt = ROOT / "experts/hopper.ckpt"
    runs = reward_parts.episode_parts(ckpt, episodes=2, seed=7)
    module, env_id, kwargs = load_policy(ckpt, None)
    evaluator = Evaluator(lambda n: make_env(env_id, n, env_kwargs=kwargs))
    scored = evaluator.returns(module.actor, 7, 2)
    evaluator.close()
    # the same episodes: one at a time they round differently from side by side (~0.1%)
    assert [run["return"] for run in runs] == pytest.approx(scored, rel=1e-3)
    for run in runs:
        assert run["reward_survive"] == pytest.approx(run["steps"])  # Hopper's healthy reward is 1 a step
        # Hopper pays its x velocity (weight 1, dt 0.008 s): the forward part is the distance / dt
        assert run["x_distance"] == pytest.approx(run["reward_forward"] * 0.008, rel=1e-6)
        assert run["x_distance"] > 10  # the expert hops forward ~19 m in 1,000 steps


class DropsControlCost(gym.Wrapper):
    """Hopper reporting its survival and forward parts but not its control cost."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {k: v for k, v in info.items() if k != "reward_ctrl"}


def test_an_env_whose_parts_miss_some_reward_is_refused_by_name(monkeypatch):
    make = gym.make
    monkeypatch.setattr(reward_parts.gym, "make", lambda *a, **kw: DropsControlCost(make(*a, **kw)))
    with pytest.raises(SystemExit, match="Hopper-v5's reward_\\* parts sum to .*not its return"):
        reward_parts.episode_parts(ROOT / "experts/hopper.ckpt", episodes=1, seed=0)


def test_a_missing_checkpoint_is_named_before_any_episode_runs(monkeypatch, capsys, tmp_path):
    missing = tmp_path / "seed_0" / "last.ckpt"
    monkeypatch.setattr("sys.argv", ["reward_parts", str(ROOT / "experts/hopper.ckpt"), str(missing)])
    monkeypatch.setattr(reward_parts, "episode_parts", lambda *a: pytest.fail("ran before checking every path"))
    with pytest.raises(SystemExit):
        reward_parts.main()
    assert f"no checkpoint file at {missing}" in capsys.readouterr().err
