"""The reward split: each episode's parts add up to the return the evaluations score; the
states a policy visits measured against the demonstrations'."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from benchmarks import reward_parts
from gail_lightning.demonstrations import load_demonstrations
from gail_lightning.demos import load_policy
from gail_lightning.envs import make_env
from gail_lightning.evaluation import Evaluator

ROOT = Path(__file__).resolve().parents[1]


def test_parts_sum_to_the_evaluators_return_episode_by_episode():
    ckpt = ROOT / "experts/hopper.ckpt"
    runs, visited = reward_parts.episode_parts(ckpt, episodes=2, seed=7)
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
    assert len(visited) == sum(run["steps"] for run in runs)
    assert visited[0] == pytest.approx(gym.make(env_id, **kwargs).reset(seed=7)[0])


class DropsControlCost(gym.Wrapper):
    """Hopper reporting its survival and forward parts but not its control cost."""

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {k: v for k, v in info.items() if k != "reward_ctrl"}


def test_reward_an_env_does_not_report_is_its_own_part(monkeypatch):
    expert = ROOT / "experts/hopper.ckpt"
    [reported], _ = reward_parts.episode_parts(expert, episodes=1, seed=0)
    assert "reward_unreported" not in reported  # Hopper reports every part
    make = gym.make
    monkeypatch.setattr(reward_parts.gym, "make", lambda *a, **kw: DropsControlCost(make(*a, **kw)))
    [dropped], _ = reward_parts.episode_parts(expert, episodes=1, seed=0)
    assert dropped["reward_unreported"] == pytest.approx(reported["reward_ctrl"])
    assert dropped["return"] == reported["return"]


def test_a_missing_checkpoint_is_named_before_any_episode_runs(monkeypatch, capsys, tmp_path):
    missing = tmp_path / "seed_0" / "last.ckpt"
    monkeypatch.setattr("sys.argv", ["reward_parts", str(ROOT / "experts/hopper.ckpt"), str(missing)])
    monkeypatch.setattr(reward_parts, "episode_parts", lambda *a: pytest.fail("ran before checking every path"))
    with pytest.raises(SystemExit):
        reward_parts.main()
    assert f"no checkpoint file at {missing}" in capsys.readouterr().err


def test_state_mmd_is_near_zero_for_one_distribution_and_grows_with_the_gap():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(4000, 5))
    same = rng.normal(size=(4000, 5))
    near, far = same + [0.5, 0, 0, 0, 0], same + [2.0, 0, 0, 0, 0]  # half and two standard deviations
    distances = [reward_parts.state_mmd(reference, rows) for rows in (same, near, far)]
    assert abs(distances[0]) < 0.002  # unbiased: it scatters around 0, either sign
    assert 0.008 < distances[1] < distances[2] / 5
    assert reward_parts.state_mmd(reference, far) == distances[2]  # seeded subsamples
    # small samples: centred on 0 over many draws (counting each point against itself adds ~0.004)
    small = [reward_parts.state_mmd(reference, same, samples=200, seed=seed) for seed in range(20)]
    assert abs(np.mean(small)) < 0.0015


def test_state_mmd_matches_the_estimator_written_out_on_a_few_states():
    """Standardized and with the kernel's width set by the reference alone, not the pair."""
    rng = np.random.default_rng(2)
    reference, other = rng.normal(size=(7, 3)), 3 * rng.normal(size=(5, 3)) + 1
    mean, std = reference.mean(0), reference.std(0)
    x, y = (reference - mean) / std, (other - mean) / std
    def squared_distances(a, b):
        return ((a[:, None] - b[None]) ** 2).sum(-1)

    width2 = np.median(squared_distances(x, x)[~np.eye(7, dtype=bool)])  # the median distance, squared

    def kernel(a, b):
        return np.exp(-squared_distances(a, b) / (2 * width2))

    def within(a):  # every pair of different points
        return (kernel(a, a).sum() - len(a)) / (len(a) * (len(a) - 1))

    expected = within(x) + within(y) - 2 * kernel(x, y).mean()
    assert reward_parts.state_mmd(reference, other) == pytest.approx(expected, rel=1e-9)
    # a tenth and 40% of each side's horizon spent in the absorbing state after termination
    q, p = 0.1, 0.4
    expected = (1 - q) ** 2 * within(x) + (1 - p) ** 2 * within(y) - 2 * (1 - q) * (1 - p) * kernel(x, y).mean()
    assert reward_parts.state_mmd(reference, other, (q, p)) == pytest.approx(expected + (q - p) ** 2, rel=1e-9)
    big = rng.normal(size=(4000, 3))
    assert reward_parts.state_mmd(big, other + 1, samples=50) != reward_parts.state_mmd(big, other + 1)


def test_a_policy_that_falls_early_is_far_from_the_demos_though_its_states_are_theirs():
    demos = load_demonstrations(ROOT / "demos/hopper.npz")
    first_steps = demos.observations[:100]  # the expert's own first 100 states, then one fall
    assert reward_parts.state_mmd(demos.observations, first_steps) < 0.3
    assert reward_parts.demo_distance(demos, first_steps, episodes=1) > 0.8  # 90% of 1,000 steps absorbed
    expert_lost = 1 - len(demos.observations) / 25_000  # 25 episodes, some fell: all terminated
    assert reward_parts.demo_distance(demos, first_steps, episodes=1) == pytest.approx(
        reward_parts.state_mmd(demos.observations, first_steps, (expert_lost, 0.9)), rel=1e-12)
    assert abs(reward_parts.demo_distance(demos, demos.observations[:2000], episodes=2)) < 0.01


def test_state_mmd_weighs_features_in_the_references_units():
    """A feature in millimetres must not drown a gap in one measured in metres."""
    rng = np.random.default_rng(1)
    reference, other = rng.normal(size=(3000, 3)), rng.normal(size=(3000, 3)) + [0, 1.0, 0]
    gap = reward_parts.state_mmd(reference, other)
    scale = np.array([1000.0, 1, 1])
    assert reward_parts.state_mmd(reference * scale, other * scale) == pytest.approx(gap, rel=1e-6)
    assert gap > 0.05


def test_demos_give_each_checkpoint_its_distance_and_refuse_another_envs(monkeypatch, tmp_path):
    out = tmp_path / "parts.json"
    argv = ["reward_parts", str(ROOT / "experts/hopper.ckpt"), "--episodes", "1", "--out", str(out)]
    monkeypatch.setattr("sys.argv", [*argv, "--demos", str(ROOT / "demos/hopper.npz")])
    reward_parts.main()
    mean = json.loads(out.read_text())[str(ROOT / "experts/hopper.ckpt")]["mean"]
    assert abs(mean["state_mmd"]) < 0.01  # the expert's states are its demonstrations'

    monkeypatch.setattr("sys.argv", [*argv, "--demos", str(ROOT / "demos/walker2d.npz")])
    monkeypatch.setattr(reward_parts, "episode_parts", lambda *a: pytest.fail("ran before checking the demos"))
    with pytest.raises(SystemExit, match=r"walker2d.npz holds Walker2d-v5 observations \(17 numbers"):
        reward_parts.main()


def test_the_mean_counts_a_part_an_episode_lacks_as_zero():
    runs = [{"return": 0.0}, {"return": 2.0, "reward_unreported": 2.0}]
    assert reward_parts.summary(runs) == {"return": 1.0, "reward_unreported": 1.0}
