import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import ENV_ID, random_demonstrations

from gail_lightning.data import CollectorDataModule
from gail_lightning.demonstrations import DemoError, load_demonstrations
from gail_lightning.envs import EnvError
from gail_lightning.errors import UserInputError


def test_save_load_round_trip(demo_file, demos):
    loaded = load_demonstrations(demo_file)
    for name in ("observations", "actions", "next_observations", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(demos, name))
    np.testing.assert_array_equal(loaded.episode_lengths, demos.episode_lengths)
    assert loaded.metadata["env_id"] == ENV_ID
    assert loaded.metadata["format_version"] == 2
    with np.load(demo_file) as archive:  # rollouts: only each episode's final next-observation
        assert "next_observations" not in archive.files
        assert archive["final_observations"].shape == (demos.num_episodes, 4)


def test_next_observations_that_do_not_continue_are_stored_whole(tmp_path, demos):
    shuffled = dataclasses.replace(demos, next_observations=demos.next_observations[::-1].copy())
    shuffled.save(tmp_path / "d.npz")
    with np.load(tmp_path / "d.npz") as archive:
        assert "final_observations" not in archive.files
    np.testing.assert_array_equal(load_demonstrations(tmp_path / "d.npz").next_observations,
                                  shuffled.next_observations)


def test_final_observations_that_do_not_fit_the_episodes(tmp_path, demo_file):
    with np.load(demo_file) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["final_observations"] = arrays["final_observations"][:-1]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DemoError, match="final_observations .* do not match"):
        load_demonstrations(tmp_path / "bad.npz")


def test_first_n_episodes(demos):
    two = demos.first(2)
    assert two.num_episodes == 2
    assert len(two.observations) == demos.episode_lengths[:2].sum()
    np.testing.assert_array_equal(two.actions, demos.actions[: len(two.actions)])


def test_datamodule_reads_sizes_and_uses_first_trajectories(demo_file, demos):
    data = CollectorDataModule(env_id=ENV_ID, demos=str(demo_file), num_trajectories=3)
    assert (data.obs_dim, len(data.action_low)) == (4, 1)
    assert data.expert.batch_size[0] == demos.episode_lengths[:3].sum()
    assert data.expert_return == 1000.0


def test_missing_file(tmp_path):
    with pytest.raises(DemoError, match="does not exist.*--data.demos"):
        load_demonstrations(tmp_path / "nope.npz")


def test_truncated_file(tmp_path, demo_file):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(demo_file.read_bytes()[:500])
    with pytest.raises(DemoError, match="cannot be read"):
        load_demonstrations(broken)


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(DemoError, match="cannot be read"):
        load_demonstrations(empty)


def test_wrong_format(tmp_path):
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(DemoError, match="not a gail_lightning demonstration file"):
        load_demonstrations(other)


def test_nan_is_refused_with_row(tmp_path, demos):
    bad = random_demonstrations()
    bad.actions[7, 0] = np.nan
    bad.save(tmp_path / "nan.npz")
    with pytest.raises(DemoError, match="actions has NaN/Inf at row 7"):
        load_demonstrations(tmp_path / "nan.npz")


def test_inconsistent_episode_boundaries(tmp_path):
    bad = random_demonstrations()
    bad.episode_lengths[0] += 1
    bad.save(tmp_path / "bounds.npz")
    with pytest.raises(DemoError, match="episode_lengths"):
        load_demonstrations(tmp_path / "bounds.npz")


def test_demos_for_another_env(demo_file):
    with pytest.raises(DemoError, match="recorded on 'InvertedPendulum-v5'.*--data.env_id"):
        CollectorDataModule(env_id="InvertedDoublePendulum-v5", demos=str(demo_file))


def test_demos_with_other_sizes(tmp_path):
    bad = random_demonstrations()
    bad.observations = np.concatenate([bad.observations, bad.observations[:, :1]], axis=1)
    bad.metadata["obs_dim"] = 5
    bad.save(tmp_path / "dims.npz")
    with pytest.raises(DemoError, match=r"dims \(5, 1\) but InvertedPendulum-v5 has \(4, 1\)"):
        CollectorDataModule(env_id=ENV_ID, demos=str(tmp_path / "dims.npz"))


def test_more_trajectories_than_the_file_holds(demo_file, demos):
    with pytest.raises(DemoError, match="num_trajectories 99"):
        CollectorDataModule(env_id=ENV_ID, demos=str(demo_file), num_trajectories=99)


def test_discrete_action_env():
    with pytest.raises(EnvError, match="Discrete action space.*continuous"):
        CollectorDataModule(env_id="CartPole-v1")


def test_unknown_env_id():
    with pytest.raises(EnvError, match="Unknown environment id 'Hoper-v5'"):
        CollectorDataModule(env_id="Hoper-v5")


def test_metadata_not_an_object(tmp_path, demos):
    path = tmp_path / "meta.npz"
    demos.save(path)
    with np.load(path) as archive:
        arrays = dict(archive)
    arrays["metadata"] = np.array(json.dumps([1, 2]))
    np.savez(path, **arrays)
    with pytest.raises(DemoError, match="metadata"):
        load_demonstrations(path)


def test_subsample_keeps_every_kth_pair_of_each_episode_from_a_fixed_offset(demos):
    every = demos.to_tensordict()
    assert len(every) == len(demos.observations)
    k = 4
    sub = demos.to_tensordict(subsample=k)
    assert torch.equal(sub["observation"], demos.to_tensordict(subsample=k)["observation"])  # fixed seed
    starts = np.cumsum(demos.episode_lengths) - demos.episode_lengths
    kept = {tuple(o) for o in sub["observation"].tolist()}
    for start, length in zip(starts, demos.episode_lengths):
        in_episode = [i for i in range(start, start + length) if tuple(demos.observations[i].tolist()) in kept]
        assert in_episode and in_episode[0] - start < k  # an offset in [0, k)
        assert np.all(np.diff(in_episode) == k) and start + length - in_episode[-1] <= k
    pairs = {tuple(o) + tuple(a) for o, a in zip(every["observation"].tolist(), every["action"].tolist())}
    assert all(tuple(o) + tuple(a) in pairs for o, a in zip(sub["observation"].tolist(), sub["action"].tolist()))


def test_datamodule_subsamples_the_expert_pairs(demo_file, demos):
    data = CollectorDataModule(env_id=ENV_ID, demos=str(demo_file), subsample=20)
    lengths = demos.episode_lengths
    assert np.floor((lengths - 1) / 20).sum() + len(lengths) >= len(data.expert) >= np.ceil((lengths - 19) / 20).sum()
    with pytest.raises(UserInputError, match="subsample must be > 0"):
        CollectorDataModule(env_id=ENV_ID, demos=str(demo_file), subsample=0)


def test_absorbing_rate_counts_one_pair_per_terminated_episode(demos):
    ends, n, episodes = demos.episode_ends, len(demos.observations), demos.num_episodes
    assert demos.terminated[ends].all()  # random InvertedPendulum episodes all fall
    assert demos.absorbing_rate == pytest.approx(episodes / (n + episodes))
    cut = dataclasses.replace(demos, terminated=demos.terminated.copy(), truncated=demos.truncated.copy())
    cut.terminated[ends[:2]], cut.truncated[ends[:2]] = False, True  # two cut by a time limit
    assert cut.absorbing_rate == pytest.approx((episodes - 2) / (n + episodes - 2))


def test_normalized_score_puts_the_random_policy_at_0_and_the_expert_at_1(demo_file):
    data = CollectorDataModule(env_id=ENV_ID, demos=str(demo_file))
    data.demonstrations.metadata |= {"random_return_mean": 20.0, "expert_return_mean": 1000.0}
    assert [data.normalized_score(r) for r in (20.0, 1000.0, 510.0, 0.0)] == pytest.approx([0.0, 1.0, 0.5, -20 / 980])
