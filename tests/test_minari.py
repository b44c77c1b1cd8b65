"""Minari import/export: exact round trips, the minari: data source, and bad datasets."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest

from gail_lightning.data import CollectorDataModule
from gail_lightning.demonstrations import ARRAYS, DemoError
from gail_lightning.demos import main as demos_main
from gail_lightning.minari_io import from_minari, to_minari

minari = pytest.importorskip("minari")
from minari.data_collector import EpisodeBuffer


@pytest.fixture()
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def test_export_then_import_keeps_every_array_and_boundary(demos, root):
    folder = to_minari(demos, "tests/pendulum/random-v0")
    loaded = minari.load_dataset("tests/pendulum/random-v0")  # what Minari users would do
    assert loaded.total_episodes == demos.num_episodes
    for source in ("tests/pendulum/random-v0", str(folder)):
        back = from_minari(source)
        for name in ARRAYS:
            expected = getattr(demos, name)
            got = getattr(back, name)
            if name == "episode_returns":  # re-summed from the float32 rewards
                np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=name)
            else:
                assert got.dtype == expected.dtype, name
                np.testing.assert_array_equal(got, expected, err_msg=name)
        assert back.metadata["env_id"] == demos.metadata["env_id"]
        assert back.metadata["random_return_mean"] == pytest.approx(demos.metadata["random_return_mean"])


def test_datamodule_reads_a_minari_dataset_directly(demos, root):
    to_minari(demos, "tests/pendulum/random-v0")
    data = CollectorDataModule(env_id="InvertedPendulum-v5", demos="minari:tests/pendulum/random-v0",
                               num_trajectories=2)
    assert data.demonstrations.num_episodes == 2
    assert len(data.expert) == int(demos.episode_lengths[:2].sum())


def test_cli_export_and_import(demos, root, tmp_path, capsys):
    demos.save(tmp_path / "d.npz")
    demos_main(["export-minari", str(tmp_path / "d.npz"), "--dataset-id", "tests/cli-v0"])
    demos_main(["import-minari", "tests/cli-v0", "--out", str(tmp_path / "back.npz")])
    out = capsys.readouterr().out
    assert "env:       InvertedPendulum-v5 (obs 4, action 1)" in out
    assert f"episodes:  {demos.num_episodes}," in out


def write_dataset(dataset_id, episodes, observation_space, action_space):
    return minari.create_dataset_from_buffers(
        dataset_id, episodes, observation_space=observation_space, action_space=action_space,
    )


def episode(obs, actions):
    n = len(actions)
    return EpisodeBuffer(id=0, observations=obs, actions=actions, rewards=[1.0] * n,
                         terminations=[False] * (n - 1) + [True], truncations=[False] * n, infos={})


BOX4 = gym.spaces.Box(-np.inf, np.inf, (4,), np.float64)
BOX1 = gym.spaces.Box(-3.0, 3.0, (1,), np.float32)


def test_bad_datasets_are_refused_naming_the_dataset_and_problem(root):
    obs = np.zeros((6, 4))
    write_dataset("bad/discrete-v0", [episode(obs, np.zeros(5, dtype=np.int64))], BOX4, gym.spaces.Discrete(2))
    with pytest.raises(DemoError, match=r"bad/discrete-v0 has action space Discrete\(2\)"):
        from_minari("bad/discrete-v0", env_id="InvertedPendulum-v5")

    nan_obs = obs.copy()
    nan_obs[3, 1] = np.nan
    write_dataset("bad/nan-v0", [episode(nan_obs, np.zeros((5, 1), dtype=np.float32))], BOX4, BOX1)
    with pytest.raises(DemoError, match="bad/nan-v0: observations has NaN/Inf at row 3"):
        from_minari("bad/nan-v0", env_id="InvertedPendulum-v5")

    write_dataset("bad/empty-v0", [], BOX4, BOX1)
    with pytest.raises(DemoError, match="bad/empty-v0 holds no episodes"):
        from_minari("bad/empty-v0", env_id="InvertedPendulum-v5")

    write_dataset("bad/noenv-v0", [episode(obs, np.zeros((5, 1), dtype=np.float32))], BOX4, BOX1)
    with pytest.raises(DemoError, match="does not say which env"):
        from_minari("bad/noenv-v0")

    with pytest.raises(DemoError, match="No local Minari dataset 'bad/absent-v0'.*nothing is downloaded"):
        from_minari("bad/absent-v0")


def test_dataset_for_another_env_or_other_dims_is_refused(demos, root):
    to_minari(demos, "tests/pendulum/random-v0")
    with pytest.raises(DemoError, match="recorded on 'InvertedPendulum-v5' but the run uses 'Hopper-v5'"):
        CollectorDataModule(env_id="Hopper-v5", demos="minari:tests/pendulum/random-v0")
    minari.create_dataset_from_buffers(  # says Hopper-v5 but holds 4-dim observations
        "bad/dims-v0", [episode(np.zeros((6, 4)), np.zeros((5, 3), dtype=np.float32))],
        env="Hopper-v5", observation_space=BOX4,
    )
    with pytest.raises(DemoError, match=r"has obs/action dims \(4, 3\) but Hopper-v5 has \(11, 3\)"):
        CollectorDataModule(env_id="Hopper-v5", demos="minari:bad/dims-v0")


def test_env_options_survive_export_and_import(demos, root):
    options = {"reset_noise_scale": 0.05}
    to_minari(dataclasses.replace(demos, metadata={**demos.metadata, "env_kwargs": options}), "tests/opts-v0")
    assert from_minari("tests/opts-v0").metadata["env_kwargs"] == options
    data = CollectorDataModule(env_id="InvertedPendulum-v5", env_kwargs=options, demos="minari:tests/opts-v0")
    assert data.demonstrations.num_episodes == demos.num_episodes
    unset = CollectorDataModule(env_id="InvertedPendulum-v5", demos="minari:tests/opts-v0")
    assert unset.env_kwargs == unset.hparams.env_kwargs == options  # taken from the demos, checkpointed
    with pytest.raises(DemoError, match="recorded with env_kwargs .*reset_noise_scale.* --data.env_kwargs"):
        CollectorDataModule(env_id="InvertedPendulum-v5", env_kwargs={}, demos="minari:tests/opts-v0")
