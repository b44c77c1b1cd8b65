"""Behavioral cloning: the BC module on a toy expert, GAIL's warm start, and the BC CLI."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ENV_ID, deterministic_actions, fit

from gail_lightning.bc import BCModule, clone_expert
from gail_lightning.data import CollectorDataModule
from gail_lightning.errors import UserInputError
from gail_lightning.module import GAILModule
from gail_lightning.networks import RunningNorm, make_actor
from gail_lightning.settings import (
    DiscriminatorSettings,
    PPOSettings,
    WarmStartSettings,
)

ROOT = Path(__file__).resolve().parents[1]


def toy_expert_action(obs: np.ndarray) -> np.ndarray:
    """A smooth deterministic expert inside InvertedPendulum's [-3, 3] action box."""
    return (2.0 * np.tanh(obs[:, :1] * 3.0 - obs[:, 1:2])).astype(np.float32)


@pytest.fixture()
def toy_demo_file(tmp_path, demos):
    toy = demos.first(demos.num_episodes)
    toy.actions = toy_expert_action(toy.observations)
    path = tmp_path / "toy.npz"
    toy.save(path)
    return path


def test_bc_module_clones_a_toy_expert(toy_demo_file, tmp_path):
    torch.manual_seed(0)
    data = CollectorDataModule(env_id=ENV_ID, demos=str(toy_demo_file), frames_per_batch=2560,
                               total_frames=2560 * 60, val_episodes=1)
    module = BCModule(data.obs_dim, data.action_low, data.action_high, hidden_sizes=(64, 64))
    obs = data.expert["observation"]
    expert_actions = data.expert["action"]
    before = (deterministic_actions(module.actor, obs) - expert_actions).abs().mean()
    fit(module, data, tmp_path)
    after = (deterministic_actions(module.actor, obs) - expert_actions).abs().mean()
    assert int(module.frames) == 2560 * 60  # 600 gradient steps of 256 pairs
    assert module.obs_norm.count == len(obs)  # fitted once, to the demonstrations
    assert after < 0.1 < before, (before, after)


def test_bc_loss_decreases_and_warm_start_moves_the_policy_to_the_expert(toy_demo_file):
    torch.manual_seed(0)
    data = CollectorDataModule(env_id=ENV_ID, demos=str(toy_demo_file))
    actor = make_actor(RunningNorm(data.obs_dim), data.obs_dim, data.action_low, data.action_high, (64, 64))
    first = clone_expert(actor, data.expert, steps=1, batch_size=256, lr=1e-3)
    last = clone_expert(actor, data.expert, steps=500, batch_size=256, lr=1e-3)
    assert last < first - 0.3  # the NLL falls as fast as the learned log-std allows


def test_gail_warm_start_runs_once_before_training(toy_demo_file, tmp_path):
    torch.manual_seed(0)
    data = CollectorDataModule(env_id=ENV_ID, demos=str(toy_demo_file), frames_per_batch=256,
                               total_frames=256, num_envs=2, val_episodes=1)
    module = GAILModule(data.obs_dim, data.action_low, data.action_high,
                        ppo=PPOSettings(lr=1e-12, epochs=1, minibatch_size=64), disc=DiscriminatorSettings(steps=1),
                        bc=WarmStartSettings(steps=300))
    obs, expert_actions = data.expert["observation"], data.expert["action"]
    before = (deterministic_actions(module.actor, obs) - expert_actions).abs().mean()
    fit(module, data, tmp_path)
    after = (deterministic_actions(module.actor, obs) - expert_actions).abs().mean()
    assert after < before / 2, (before, after)  # PPO's step is ~0 here: the clone did this


def test_bc_without_demonstrations_is_refused(tmp_path):
    data = CollectorDataModule(env_id=ENV_ID, val_episodes=1)
    module = BCModule(data.obs_dim, data.action_low, data.action_high)
    with pytest.raises(UserInputError, match="BCModule learns from demonstrations"):
        fit(module, data, tmp_path)


def test_bc_config_fits_through_the_cli(tmp_path):
    proc = subprocess.run(
        [sys.executable, "train.py", "fit", "--config", "bc/inverted_pendulum.yaml",
         "--data.total_frames=5120", "--eval.eval_every_frames=2560", "--eval.episodes=1",
         "--data.val_episodes=1", f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(checkpoint["state_dict"]["frames"]) == 5120
    assert checkpoint["hyper_parameters"]["_class_path"] == "gail_lightning.BCModule"
