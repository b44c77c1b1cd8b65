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
    returns = np.array([episode_return(r) for r in runs])

    def cat(key):
        return torch.cat([r[key] for r in runs]).numpy()

    return Demonstrations(
        observations=cat("observation"),
        actions=cat("action"),
        next_observations=cat(("next", "observation")),
        rewards=cat(("next", "reward")).reshape(-1),
        terminated=cat(("next", "terminated")).reshape(-1),
        truncated=cat(("next", "truncated")).reshape(-1),
        episode_lengths=np.array([len(r) for r in runs], dtype=np.int64),
        episode_returns=returns,
        metadata={
            "env_id": env_id,
            "obs_dim": int(runs[0]["observation"].shape[-1]),
            "action_dim": int(runs[0]["action"].shape[-1]),
            "expert_return_mean": 1000.0,
            "expert_return_std": 0.0,
            "random_return_mean": float(returns.mean()),
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
