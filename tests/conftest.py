"""Shared fixtures and helpers: a small demonstration file made from random InvertedPendulum
episodes, an in-process one-epoch fit, and a policy's deterministic actions."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from gail_lightning.demonstrations import Demonstrations
from gail_lightning.envs import episode_return, make_env, rollout_episodes

ENV_ID = "InvertedPendulum-v5"


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


def deterministic_actions(actor, obs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), set_exploration_type(ExplorationType.DETERMINISTIC):
        return actor(TensorDict({"observation": obs}, batch_size=[len(obs)]))["action"]
