"""Expert demonstration files: the on-disk format, loading and validation.

A demonstration file is a compressed NumPy archive (``.npz``) with one row per
environment step, episodes stored one after another:

| array               | shape         | dtype   |
|---------------------|---------------|---------|
| observations        | [N, obs_dim]  | float32 |
| actions             | [N, act_dim]  | float32 |
| final_observations  | [E, obs_dim]  | float32 |  (each episode's last next-observation)
| rewards             | [N]           | float32 |
| terminated          | [N]           | bool    |
| truncated           | [N]           | bool    |
| episode_lengths     | [E]           | int64   |  (sum = N; episode boundaries)
| episode_returns     | [E]           | float64 |
| metadata            | []            | str     |  (JSON, see ``REQUIRED_METADATA``)

Within an episode the next observation of a step is the observation of the step after,
so only each episode's final one is stored: half the size of storing them all (Humanoid's
25 × 1000 steps then fit in 10 MB). Data whose next observations do not continue that way
(and version-1 files) store ``next_observations`` [N, obs_dim] instead.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from gail_lightning.envs import episode_return
from gail_lightning.errors import UserInputError

FORMAT_VERSION = 2
ARRAYS = (
    "observations",
    "actions",
    "next_observations",
    "rewards",
    "terminated",
    "truncated",
    "episode_lengths",
    "episode_returns",
)
REQUIRED_METADATA = (
    "env_id",
    "obs_dim",
    "action_dim",
    "expert_return_mean",
    "expert_return_std",
    "random_return_mean",
    "seed",
    "versions",
    "command",
)


class DemoError(UserInputError):
    """A demonstration file that cannot be used; the message names the file and the fix."""


@dataclass
class Demonstrations:
    """Expert episodes laid end to end, with the metadata that describes them."""

    observations: np.ndarray
    actions: np.ndarray
    next_observations: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode_lengths: np.ndarray
    episode_returns: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_rollouts(cls, episodes: Sequence[TensorDictBase], metadata: dict[str, Any]) -> Demonstrations:
        """Whole TorchRL rollouts laid end to end; sizes and expert returns are filled in."""

        def cat(key: str | tuple[str, ...]) -> np.ndarray:
            return torch.cat([episode[key] for episode in episodes]).numpy()

        returns = np.array([episode_return(episode) for episode in episodes])
        return cls(
            observations=cat("observation"),
            actions=cat("action"),
            next_observations=cat(("next", "observation")),
            rewards=cat(("next", "reward")).reshape(-1),
            terminated=cat(("next", "terminated")).reshape(-1),
            truncated=cat(("next", "truncated")).reshape(-1),
            episode_lengths=np.array([len(episode) for episode in episodes], dtype=np.int64),
            episode_returns=returns,
            metadata={
                "obs_dim": int(episodes[0]["observation"].shape[-1]),
                "action_dim": int(episodes[0]["action"].shape[-1]),
                "expert_return_mean": float(returns.mean()),
                "expert_return_std": float(returns.std()),
                **metadata,
            },
        )

    @property
    def num_episodes(self) -> int:
        return len(self.episode_lengths)

    def first(self, n: int) -> Demonstrations:
        """The first ``n`` episodes."""
        rows = int(self.episode_lengths[:n].sum())
        return Demonstrations(
            **{k: getattr(self, k)[:rows] for k in ARRAYS[:6]},
            episode_lengths=self.episode_lengths[:n],
            episode_returns=self.episode_returns[:n],
            metadata=dict(self.metadata),
        )

    def to_tensordict(self, subsample: int = 1) -> TensorDict:
        """Expert (s, a) pairs, with each one's next observation and termination (AIRL's D
        reads them), keyed as the collector keys policy data.

        ``subsample`` k keeps every k-th pair of each episode from an offset in [0, k) drawn
        per episode with a fixed seed, as Ho & Ermon's GAIL experiments (k = 20) did: fewer,
        less correlated pairs, which is what makes few trajectories hard for BC there.
        """
        offsets = np.random.default_rng(0).integers(0, subsample, size=self.num_episodes)
        starts = np.cumsum(self.episode_lengths) - self.episode_lengths
        rows = np.concatenate([
            np.arange(start + offset, start + length, subsample)
            for start, length, offset in zip(starts, self.episode_lengths, offsets, strict=True)
        ])
        return TensorDict(
            {
                "observation": torch.as_tensor(self.observations[rows], dtype=torch.float32),
                "action": torch.as_tensor(self.actions[rows], dtype=torch.float32),
                "next": {
                    "observation": torch.as_tensor(self.next_observations[rows], dtype=torch.float32),
                    "terminated": torch.as_tensor(self.terminated[rows]).unsqueeze(-1),
                },
            },
            batch_size=[len(rows)],
        )

    @property
    def absorbing_rate(self) -> float:
        """The absorbing pairs' share of the pairs with absorbing states (DAC): one absorbing
        pair per episode that terminated (not truncated), after its steps' pairs."""
        terminated = int(self.terminated[self.episode_ends].sum())
        return terminated / (len(self.observations) + terminated)

    @property
    def episode_ends(self) -> np.ndarray:
        """Row of each episode's last step."""
        return np.cumsum(self.episode_lengths) - 1

    def _next_observations_continue(self) -> bool:
        """Whether each step's next observation is the next step's, within every episode."""
        obs, nxt, lengths = self.observations, self.next_observations, self.episode_lengths
        if nxt.shape != obs.shape or lengths.sum() != len(obs) or (lengths <= 0).any():
            return False
        ends = self.episode_ends
        return np.array_equal(continued_observations(obs, nxt[ends], ends), nxt)

    def save(self, path: str | Path) -> None:
        """Write a compressed ``.npz`` (atomically: a temp file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {**self.metadata, "format_version": FORMAT_VERSION}
        arrays = {k: getattr(self, k) for k in ARRAYS}
        if self._next_observations_continue():
            arrays["final_observations"] = self.next_observations[self.episode_ends]
            del arrays["next_observations"]
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, **arrays, metadata=np.array(json.dumps(meta)))
        tmp.replace(path)


def continued_observations(observations: np.ndarray, final: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Next observations of episodes laid end to end: the following row's observation,
    or the episode's final observation at its last step."""
    following = np.empty_like(observations)
    following[:-1] = observations[1:]
    following[ends] = final
    return following


def load_demonstrations(path: str | Path) -> Demonstrations:
    """Read and validate a demonstration file; raise ``DemoError`` on anything unusable."""
    if not str(path).strip():
        raise DemoError(
            "--data.demos is empty. Pass a file made by `python -m gail_lightning.demos record`, "
            "or null with --model gail_lightning.PPOModule to train an expert on the env reward."
        )
    path = Path(path)
    if not path.is_file():
        raise DemoError(
            f"Demonstration file {str(path)!r} does not exist. Pass --data.demos with a file "
            "made by `python -m gail_lightning.demos record` (see README)."
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            stored = set(archive.files)
            if "final_observations" in stored:
                stored.add("next_observations")  # rebuilt from it below
            missing = [k for k in (*ARRAYS, "metadata") if k not in stored]
            if missing:
                raise DemoError(
                    f"{path}: not a gail_lightning demonstration file (missing arrays "
                    f"{missing}). Record one with `python -m gail_lightning.demos record`."
                )
            arrays = {k: archive[k] for k in ARRAYS if k in archive.files}
            final = archive["final_observations"] if "final_observations" in archive.files else None
            metadata = json.loads(str(archive["metadata"]))
    except DemoError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, json.JSONDecodeError) as err:
        raise DemoError(
            f"{path}: cannot be read as a demonstration file ({type(err).__name__}: {err}). "
            "The file is truncated or of another format; re-record it."
        ) from None
    if not isinstance(metadata, dict):
        raise DemoError(f"{path}: metadata is not a JSON object; re-record the file.")
    if final is not None:
        arrays["next_observations"] = rebuilt_next_observations(path, arrays, final)
    demos = Demonstrations(**arrays, metadata=metadata)
    validate(demos, path)
    return demos


def rebuilt_next_observations(path: Path, arrays: dict[str, np.ndarray], final: np.ndarray) -> np.ndarray:
    """``next_observations`` of a file that stores only each episode's final one."""
    obs, lengths = arrays["observations"], arrays["episode_lengths"]
    if (obs.ndim != 2 or final.shape != (len(lengths), obs.shape[-1])
            or lengths.sum() != len(obs) or (lengths <= 0).any()):
        raise DemoError(
            f"{path}: final_observations {final.shape} do not match observations {obs.shape} "
            f"and {len(lengths)} episodes of {int(lengths.sum())} steps; re-record the file."
        )
    return continued_observations(obs, final, np.cumsum(lengths) - 1)


def validate(demos: Demonstrations, path: str | Path) -> None:
    """Raise ``DemoError`` naming ``path`` (a file or dataset) if ``demos`` is unusable."""
    missing = [k for k in REQUIRED_METADATA if k not in demos.metadata]
    if missing:
        raise DemoError(f"{path}: metadata lacks {missing}; re-record the file.")
    for name in ARRAYS:
        values = getattr(demos, name)
        real = np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)
        if values.ndim == 0 or not (real or values.dtype == bool):
            raise DemoError(f"{path}: {name} is not a numeric array ({values.dtype}, shape {values.shape}).")
    if not np.issubdtype(demos.episode_lengths.dtype, np.integer):
        raise DemoError(f"{path}: episode_lengths must hold integers, not {demos.episode_lengths.dtype}.")
    n = len(demos.observations)
    if demos.observations.ndim != 2 or demos.actions.ndim != 2 or len(demos.actions) != n:
        raise DemoError(
            f"{path}: observations {demos.observations.shape} and actions "
            f"{demos.actions.shape} must be [N, dim] arrays with the same N."
        )
    for name in ARRAYS[2:6]:
        if len(getattr(demos, name)) != n:
            raise DemoError(f"{path}: {name} has {len(getattr(demos, name))} rows, expected {n}.")
    if demos.episode_lengths.sum() != n or (demos.episode_lengths <= 0).any():
        raise DemoError(
            f"{path}: episode_lengths sum to {int(demos.episode_lengths.sum())} but the file "
            f"has {n} rows; episode boundaries are inconsistent."
        )
    if demos.num_episodes == 0:
        raise DemoError(f"{path}: holds no episodes.")
    for name in ("observations", "actions", "next_observations", "rewards"):
        values = getattr(demos, name)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DemoError(f"{path}: {name} has NaN/Inf at row {row}; re-record the file.")
    dims = (demos.observations.shape[1], demos.actions.shape[1])
    if dims != (demos.metadata["obs_dim"], demos.metadata["action_dim"]):
        raise DemoError(
            f"{path}: arrays have obs/action dims {dims} but metadata says "
            f"{(demos.metadata['obs_dim'], demos.metadata['action_dim'])}."
        )


def check_compatible(
    demos: Demonstrations,
    path: str | Path,
    env_id: str,
    env_kwargs: Mapping[str, Any],
    obs_dim: int,
    action_dim: int,
) -> None:
    """Refuse demonstrations recorded on another env, env options or space sizes."""
    if demos.metadata["env_id"] != env_id:
        raise DemoError(
            f"{path} was recorded on {demos.metadata['env_id']!r} but the run uses "
            f"{env_id!r}. Pass --data.env_id {demos.metadata['env_id']} or demos for {env_id}."
        )
    recorded = demos.metadata.get("env_kwargs", {})
    if recorded != dict(env_kwargs):
        raise DemoError(
            f"{path} was recorded with env_kwargs {recorded} but the run uses {dict(env_kwargs)}. "
            f"Pass --data.env_kwargs '{json.dumps(recorded)}' or demos recorded with the run's."
        )
    dims = (demos.observations.shape[1], demos.actions.shape[1])
    if dims != (obs_dim, action_dim):
        raise DemoError(
            f"{path} has obs/action dims {dims} but {env_id} has {(obs_dim, action_dim)}. "
            "Record demonstrations with the same env version."
        )
