"""Minari datasets (the standard offline-RL format) to and from demonstration files.

``minari`` is an optional extra (``pip install -e ".[minari]"``). Datasets are opened from
local disk only: a dataset folder, or an id under ``$MINARI_DATASETS_PATH`` (default
``~/.minari/datasets``); no download is ever attempted.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np

from gail_lightning.demonstrations import DemoError, Demonstrations, validate
from gail_lightning.envs import random_policy_return
from gail_lightning.provenance import package_versions

PREFIX = "minari:"  # --data.demos minari:<name-or-path>


def _minari() -> ModuleType:
    try:
        import minari
    except ImportError:
        raise DemoError(
            "Minari datasets need the minari package: pip install -e \".[minari]\" "
            "(or pip install \"minari[hdf5]\")."
        ) from None
    return minari


def open_dataset(source: str | Path) -> Any:
    """A local Minari dataset from its folder (or its ``data`` folder) or its id."""
    minari = _minari()
    path = Path(source)
    candidates = [path / "data", path, minari.storage.get_dataset_path(str(source)) / "data"]
    for folder in candidates:
        if (folder / "metadata.json").is_file():
            try:
                return minari.MinariDataset(folder)
            except Exception as err:  # noqa: BLE001 - minari raises many types for a broken dataset
                raise DemoError(f"Minari dataset {source}: cannot be opened ({type(err).__name__}: {err}).") from None
    raise DemoError(
        f"No local Minari dataset {str(source)!r} (looked for metadata.json in "
        f"{', '.join(str(c) for c in candidates)}). Pass a dataset folder or an id under "
        "$MINARI_DATASETS_PATH; nothing is downloaded."
    )


def from_minari(source: str | Path, env_id: str | None = None, command: str = "") -> Demonstrations:
    """A Minari dataset as validated demonstrations, episode boundaries and flags kept.

    The random-policy return comes from the dataset's ``ref_min_score`` when it has one,
    else from as many random episodes as the dataset holds.
    """
    dataset = open_dataset(source)
    name = f"Minari dataset {source}"
    for kind, space in (("action", dataset.action_space), ("observation", dataset.observation_space)):
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
            raise DemoError(
                f"{name} has {kind} space {space}; GAIL here needs flat continuous (1-D Box) "
                "observations and actions."
            )
    episodes = list(dataset.iterate_episodes())
    if not episodes:
        raise DemoError(f"{name} holds no episodes.")
    env_spec = dataset.spec.env_spec
    env_id = env_id or (env_spec.id if env_spec is not None else None)
    if env_id is None:
        raise DemoError(f"{name} does not say which env it was recorded on; pass --env-id.")
    env_kwargs = env_options(env_spec) if env_spec is not None and env_spec.id == env_id else {}
    returns = np.array([float(np.sum(ep.rewards)) for ep in episodes])
    random_return = dataset.storage.metadata.get("ref_min_score")
    if random_return is None:
        random_return = random_policy_return(env_id, len(episodes), seed=1, env_kwargs=env_kwargs)
    demos = Demonstrations(
        observations=np.concatenate([ep.observations[:-1] for ep in episodes]).astype(np.float32),
        actions=np.concatenate([ep.actions for ep in episodes]).astype(np.float32),
        next_observations=np.concatenate([ep.observations[1:] for ep in episodes]).astype(np.float32),
        rewards=np.concatenate([ep.rewards for ep in episodes]).astype(np.float32),
        terminated=np.concatenate([ep.terminations for ep in episodes]).astype(bool),
        truncated=np.concatenate([ep.truncations for ep in episodes]).astype(bool),
        episode_lengths=np.array([len(ep) for ep in episodes], dtype=np.int64),
        episode_returns=returns,
        metadata={
            "env_id": env_id,
            "env_kwargs": env_kwargs,
            "obs_dim": int(dataset.observation_space.shape[0]),
            "action_dim": int(dataset.action_space.shape[0]),
            "expert_return_mean": float(returns.mean()),
            "expert_return_std": float(returns.std()),
            "random_return_mean": float(random_return),
            "seed": None,
            "source": f"{PREFIX}{source}",
            "versions": package_versions(),
            "command": command,
        },
    )
    validate(demos, name)
    return demos


def env_options(spec: gym.envs.registration.EnvSpec) -> dict[str, Any]:
    """The keyword arguments ``spec`` was made with beyond those its id registers."""
    registered = gym.spec(spec.id).kwargs if spec.id in gym.registry else {}
    return {k: v for k, v in spec.kwargs.items() if k not in registered or registered[k] != v}


@contextmanager
def _datasets_root(root: Path | None):
    """Point minari at ``root`` for the duration (it reads the folder from the environment)."""
    if root is None:
        yield
        return
    before = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if before is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = before


def to_minari(demos: Demonstrations, dataset_id: str, root: Path | None = None) -> Path:
    """Write ``demos`` as the local Minari dataset ``dataset_id``; returns its folder.

    Minari stores an episode's observations with the final one appended, so each episode's
    ``next_observations`` must continue its ``observations`` (true of recorded rollouts).
    """
    minari = _minari()
    from minari.data_collector import EpisodeBuffer

    buffers, start = [], 0
    for i, length in enumerate(demos.episode_lengths.tolist()):
        rows = slice(start, start + length)
        obs, nxt = demos.observations[rows], demos.next_observations[rows]
        if not np.array_equal(obs[1:], nxt[:-1]):
            raise DemoError(
                f"episode {i}: next_observations do not continue observations, so it cannot "
                "be written as a Minari episode."
            )
        buffers.append(EpisodeBuffer(
            id=i,
            observations=np.concatenate([obs, nxt[-1:]]),
            actions=demos.actions[rows],
            rewards=demos.rewards[rows].tolist(),
            terminations=demos.terminated[rows].tolist(),
            truncations=demos.truncated[rows].tolist(),
            infos={},
        ))
        start += length
    meta = demos.metadata
    env = gym.make(meta["env_id"], **meta.get("env_kwargs", {}))  # its spec holds the options
    env.close()
    with _datasets_root(root):
        minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            env=env.spec,
            eval_env=env.spec,
            algorithm_name="gail_lightning expert",
            ref_min_score=meta["random_return_mean"],
            ref_max_score=meta["expert_return_mean"],
            description=f"Exported by gail_lightning from a demonstration file ({meta['command']}).",
        )
        return minari.storage.get_dataset_path(dataset_id)
