"""Shared fixtures and helpers: a small demonstration file made from random InvertedPendulum
episodes, an in-process one-epoch fit, a policy's deterministic actions, and `train.py` run
as users run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from gail_lightning.data import CollectorDataModule
from gail_lightning.demonstrations import Demonstrations
from gail_lightning.envs import episode_return, make_env, rollout_episodes
from gail_lightning.module import GAILModule
from gail_lightning.settings import DiscriminatorSettings, PPOSettings

ENV_ID = "InvertedPendulum-v5"
ROOT = Path(__file__).resolve().parents[1]


def random_demonstrations(env_id: str = ENV_ID, episodes: int = 6, seed: int = 0) -> Demonstrations:
    """Random-policy episodes in the demonstration format (the 'expert' quality is irrelevant)."""
    torch.manual_seed(seed)
    runs = rollout_episodes(make_env(env_id, seed=seed), None, episodes)
    return Demonstrations.from_rollouts(
        runs,
        {
            "env_id": env_id,
            "expert_return_mean": 1000.0,
            "expert_return_std": 0.0,
            "random_return_mean": float(np.mean([episode_return(r) for r in runs])),
            "seed": seed,
            "versions": {},
            "command": "tests",
        },
    )


@pytest.fixture(scope="session")
def demos() -> Demonstrations:
    return random_demonstrations()


@pytest.fixture()
def demo_file(tmp_path: Path, demos: Demonstrations) -> Path:
    path = tmp_path / "demos.npz"
    demos.save(path)
    return path


def fit(module: L.LightningModule, data: L.LightningDataModule, tmp_path: Path, **trainer_kwargs) -> L.Trainer:
    """Fit in this process until the module stops itself (its frame budget)."""
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        **trainer_kwargs,
    )
    trainer.fit(module, data)
    return trainer


SMALL_PPO = PPOSettings(epochs=2, minibatch_size=64)
SMALL_DISC = DiscriminatorSettings(steps=2, batch_size=64)


def build(demo_file: Path, data_kwargs: dict | None = None, **model_kwargs) -> tuple[GAILModule, CollectorDataModule]:
    """A small GAILModule on InvertedPendulum and its DataModule over ``demo_file``."""
    settings = dict(env_id=ENV_ID, demos=str(demo_file), frames_per_batch=256, total_frames=512,
                    num_envs=2, val_episodes=1)
    data = CollectorDataModule(**{**settings, **(data_kwargs or {})})
    kwargs = dict(ppo=SMALL_PPO, disc=SMALL_DISC)
    module = GAILModule(data.obs_dim, data.action_low, data.action_high, **{**kwargs, **model_kwargs})
    return module, data


def deterministic_actions(actor, obs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        return actor(TensorDict({"observation": obs}, batch_size=[len(obs)]))["action"]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python train.py *args`` from the repo root; with ``check``, its stderr on failure."""
    proc = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def frames_in(ckpt: Path) -> int:
    """The frame count a checkpoint holds."""
    return int(torch.load(ckpt, weights_only=False)["state_dict"]["frames"])
