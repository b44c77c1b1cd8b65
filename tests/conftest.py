"""Shared fixtures: a small demonstration file made from random InvertedPendulum episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

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
