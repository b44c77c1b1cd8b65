"""`python -m gail_lightning.demos`: record an expert checkpoint, then inspect and load it."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gail_lightning.demonstrations import load_demonstrations
from gail_lightning.demos import info, main, manifest, manifest_table, record

ROOT = Path(__file__).resolve().parents[1]


def test_record_info_load_round_trip(tmp_path):
    out = tmp_path / "ip.npz"
    made = record(ROOT / "experts" / "inverted_pendulum.ckpt", episodes=2, seed=5, out=out, command="test")
    loaded = load_demonstrations(out)
    assert loaded.metadata["env_id"] == "InvertedPendulum-v5"
    assert loaded.num_episodes == 2
    np.testing.assert_array_equal(loaded.observations, made.observations)
    np.testing.assert_array_equal(loaded.episode_returns, made.episode_returns)
    # consecutive rows chain: next_observation of a step is the observation of the next one
    first = loaded.episode_lengths[0]
    np.testing.assert_array_equal(loaded.next_observations[: first - 1], loaded.observations[1:first])
    assert loaded.metadata["expert_return_mean"] > 10 * loaded.metadata["random_return_mean"]
    summary = info(out)
    assert "InvertedPendulum-v5" in summary and "episodes:  2" in summary


def test_shipped_demo_files_load_and_match_their_env():
    for name, env_id in (("inverted_pendulum.npz", "InvertedPendulum-v5"), ("hopper.npz", "Hopper-v5")):
        demos = load_demonstrations(ROOT / "demos" / name)
        assert demos.metadata["env_id"] == env_id
        assert demos.num_episodes == 25


def test_shipped_manifest_matches_the_shipped_demo_files():
    folder = Path(__file__).resolve().parents[1] / "demos"
    shipped = json.loads((folder / "manifest.json").read_text())
    assert {entry["file"] for entry in shipped} == {p.name for p in folder.glob("*.npz")}
    for entry in shipped:
        path = folder / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], entry["file"]
        assert path.stat().st_size <= 10 * 2**20
    assert manifest(folder) == shipped  # regenerating it changes nothing
    assert (folder / "README.md").read_text() == manifest_table(shipped)  # nor its table


def test_record_uses_and_keeps_the_env_options_of_the_expert_run(tmp_path):
    checkpoint = torch.load(ROOT / "experts" / "inverted_pendulum.ckpt", weights_only=False)
    checkpoint["datamodule_hyper_parameters"]["env_kwargs"] = {"reset_noise_scale": 0.1}
    torch.save(checkpoint, tmp_path / "expert.ckpt")
    made = record(tmp_path / "expert.ckpt", episodes=1, seed=5, out=tmp_path / "ip.npz")
    plain = record(ROOT / "experts" / "inverted_pendulum.ckpt", episodes=1, seed=5, out=tmp_path / "plain.npz")
    assert made.metadata["env_kwargs"] == {"reset_noise_scale": 0.1} and plain.metadata["env_kwargs"] == {}
    # a 10x larger reset noise starts the episode elsewhere
    assert np.abs(made.observations[0]).max() > 5 * np.abs(plain.observations[0]).max()
    assert "InvertedPendulum-v5 {'reset_noise_scale': 0.1} (obs 4" in info(tmp_path / "ip.npz")


def test_a_missing_checkpoint_stops_record_in_one_line(tmp_path):
    missing = tmp_path / "last.ckpt"
    with pytest.raises(SystemExit, match=f"^error: no checkpoint file at {missing}: pass"):
        main(["record", "--ckpt", str(missing), "--out", str(tmp_path / "demos.npz")])
