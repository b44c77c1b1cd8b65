"""Where a policy's return comes from: the env's reward split into its parts.

    python -m benchmarks.reward_parts experts/humanoid.ckpt RUN/checkpoints/last.ckpt --episodes 5
    python -m benchmarks.reward_parts experts/hopper.ckpt --out parts.json
    python -m benchmarks.reward_parts experts/humanoid.ckpt RUN/last.ckpt --demos demos/humanoid.npz

On Humanoid-v5 a policy that only stays upright for 1,000 steps earns 5,000 of the expert's
~5,300 from ``reward_survive`` alone, so a normalized score near 1 can mean standing, not
walking. This runs deterministic episodes of each checkpoint and sums, per episode, every
``reward_*`` part the env reports in its step info (survival, forward progress, control and
contact costs), with the episode length and the distance walked along x, so a score can be
read beside what earned it. What the return holds beyond the reported parts is
``reward_unreported`` (HumanoidStandup-v5 pays +1 a step and does not report it; negative if
the reported parts over-count), so the parts add up to the return.
For MuJoCo envs; ``x_distance`` is the root's x (``qpos[0]``), a distance for the
locomotion tasks only.

Survival and even distance do not say whether a policy moves as the expert does: on
Humanoid a policy trained on a survival-only reward walks further than the expert. With
``--demos``, each checkpoint also gets ``state_mmd``, the squared maximum mean discrepancy
between the states its episodes occupy and the demonstrations' (0: the same; 2 at most),
under one Gaussian kernel fixed by the demonstrations, so every checkpoint is measured with
the same ruler. Occupancy is over the env's time limit: the steps an episode loses by
ending early count as one absorbing state, unlike any observation (as in DAC), so a policy
that falls at once is far from the expert even though the few states it saw are the
expert's own start.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from gail_lightning.demonstrations import Demonstrations, load_demonstrations
from gail_lightning.demos import load_policy
from gail_lightning.envs import SimulationGuard
from gail_lightning.errors import UserInputError
from gail_lightning.provenance import package_versions

EPISODE_SEED = 1000  # apart from training's and the evaluations' seeds


@torch.no_grad()
def episode_parts(ckpt: Path, episodes: int, seed: int) -> tuple[list[dict[str, float]], np.ndarray]:
    """Per episode of ``ckpt``'s deterministic policy (episode ``i`` reset with ``seed + i``):
    the return, each ``reward_*`` part summed, the steps and the x distance covered; and
    every observation the policy acted on, episodes end to end."""
    module, env_id, env_kwargs = load_policy(ckpt, None)
    # Plain gymnasium, not the Evaluator's VectorGymEnv: that drops the step info the parts are in.
    env = SimulationGuard(gym.make(env_id, **env_kwargs))
    data = getattr(env.unwrapped, "data", None)
    if data is None:
        raise SystemExit(f"{env_id} is not a MuJoCo env: its reward parts and distance cannot be read.")
    runs, visited = [], []
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            start_x = data.qpos[0]
            run: dict[str, float] = {"return": 0.0, "steps": 0}
            done = False
            while not done:
                visited.append(obs)
                state = TensorDict({"observation": torch.as_tensor(obs, dtype=torch.float32)}, batch_size=[])
                obs, reward, terminated, truncated, info = env.step(module.actor(state)["action"].numpy())
                run["return"] += float(reward)
                run["steps"] += 1
                for key, value in info.items():
                    if key.startswith("reward_"):
                        run[key] = run.get(key, 0.0) + float(value)
                done = terminated or truncated
            if env.instabilities:
                raise SystemExit(f"{ckpt}: the simulation blew up in episode {i}; its parts cannot be read.")
            parts = [v for k, v in run.items() if k.startswith("reward_")]
            unreported = run["return"] - sum(parts)  # HumanoidStandup-v5's +1 a step
            if abs(unreported) > 1e-6 * max(1.0, abs(run["return"]), *map(abs, parts)):
                run["reward_unreported"] = unreported
            run["x_distance"] = float(data.qpos[0] - start_x)
            runs.append(run)
    env.close()
    return runs, np.asarray(visited, dtype=np.float32)


def state_mmd(
    reference: np.ndarray, states: np.ndarray, ended: tuple[float, float] = (0.0, 0.0), samples: int = 2000,
    seed: int = 0,
) -> float:
    """Squared MMD between the state occupancies of ``reference`` and ``states`` (rows are
    observations, each side subsampled to ``samples`` rows; the kernel means are unbiased, the
    shares plugged in). ``ended`` holds each side's share of the horizon spent after its
    episodes terminated, one absorbing state whose kernel with any observation is 0. Features
    are standardized and the Gaussian kernel's width set (median pairwise distance) by
    ``reference`` alone, so distances to one reference compare across policies."""
    if min(len(reference), len(states)) < 2:
        raise ValueError("state_mmd needs at least 2 states on each side")
    rng = np.random.default_rng(seed)

    def pick(rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows[rng.choice(len(rows), min(samples, len(rows)), replace=False)], dtype=np.float64)

    ref, other = pick(reference), pick(states)
    std = ref.std(0)
    std = np.where(std > 1e-8, std, 1.0)  # a feature constant in the demos: measured in its own units
    x, y = (torch.as_tensor((rows - ref.mean(0)) / std) for rows in (ref, other))
    xx = torch.cdist(x, x)
    width = xx[~torch.eye(len(x), dtype=torch.bool)].median().clamp_min(1e-12)

    def kernel_mean(a: torch.Tensor, same: bool) -> torch.Tensor:
        k = torch.exp(-(a**2) / (2 * width**2))
        if not same:
            return k.mean()
        n = len(k)
        return (k.sum() - k.diagonal().sum()) / (n * (n - 1))  # unbiased: no point against itself

    q, p = ended  # the observations weigh 1 - q and 1 - p, the absorbing state q and p
    within = (1 - q) ** 2 * kernel_mean(xx, True) + (1 - p) ** 2 * kernel_mean(torch.cdist(y, y), True)
    return float(within - 2 * (1 - q) * (1 - p) * kernel_mean(torch.cdist(x, y), False) + (q - p) ** 2)


def horizon(demos: Demonstrations) -> int:
    """The time limit of the env the demonstrations were recorded on: the occupancy's horizon."""
    env_id, env_kwargs = demos.metadata["env_id"], demos.metadata.get("env_kwargs", {})
    steps = env_kwargs.get("max_episode_steps") or gym.spec(env_id).max_episode_steps
    if steps is None:
        raise UserInputError(f"{env_id} has no time limit to measure a state occupancy over")
    return steps


def demo_distance(demos: Demonstrations, visited: np.ndarray, episodes: int) -> float:
    """``state_mmd`` of a policy's ``episodes`` (``visited``: their observations end to end,
    each episode run to termination or the time limit) against the demonstrations'."""
    steps = horizon(demos)
    lost = ((steps - demos.episode_lengths) * demos.terminated[demos.episode_ends]).sum()  # terminated only
    ended = lost / (demos.num_episodes * steps), 1 - len(visited) / (episodes * steps)
    if not all(0 <= share <= 1 for share in ended):
        raise ValueError(f"episodes longer than the {steps}-step time limit: {ended}")
    return state_mmd(demos.observations, visited, ended)


def check_demos(demos: Demonstrations, path: Path, ckpt: Path) -> None:
    """Refuse demonstrations whose observations are not those of ``ckpt``'s env, or of an
    env without a time limit."""
    horizon(demos)
    _, env_id, env_kwargs = load_policy(ckpt, None)
    env = gym.make(env_id, **env_kwargs)
    obs_dim = env.observation_space.shape[0]
    env.close()
    recorded = demos.metadata["env_id"], demos.metadata.get("env_kwargs", {}), demos.observations.shape[1]
    if recorded != (env_id, dict(env_kwargs), obs_dim):
        raise UserInputError(
            f"{path} holds {recorded[0]} observations ({recorded[2]} numbers, env_kwargs {recorded[1]}) but "
            f"{ckpt} acts on {env_id}'s ({obs_dim}, env_kwargs {dict(env_kwargs)}): pass its task's demos."
        )


def shown(key: str, value: float) -> str:
    """A summary value as printed: returns and distances to 0.1, the state MMD to 0.001."""
    return f"{value:.3f}" if key == "state_mmd" else f"{value:,.1f}"


def summary(runs: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each quantity over episodes; a part one episode lacks counts 0 there."""
    keys = dict.fromkeys(key for run in runs for key in run)
    return {key: statistics.mean(run.get(key, 0.0) for run in runs) for key in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpts", nargs="+", type=Path, help="policy checkpoints (experts/*.ckpt, a run's *.ckpt)")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=EPISODE_SEED, help="episode i resets with seed + i")
    parser.add_argument("--out", type=Path, help="write every checkpoint's episodes and means here (JSON)")
    parser.add_argument("--demos", type=Path, help="demonstrations (.npz) to measure each policy's state occupancy against")
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error(f"--episodes {args.episodes}: run at least one episode")
    missing = [str(ckpt) for ckpt in args.ckpts if not ckpt.is_file()]
    if missing:  # before any episode runs, not after the first checkpoints
        parser.error(f"no checkpoint file at {', '.join(missing)}")
    if args.demos and not args.demos.is_file():
        parser.error(f"no demonstration file at {args.demos}: pass demos/<task>.npz or one you recorded")
    demos = None
    if args.demos:
        try:
            demos = load_demonstrations(args.demos)
            for ckpt in args.ckpts:  # before any episode runs
                check_demos(demos, args.demos, ckpt)
        except UserInputError as err:
            sys.exit(f"error: {err}")
    results = {}
    for ckpt in args.ckpts:
        runs, visited = episode_parts(ckpt, args.episodes, args.seed)
        mean = summary(runs)
        if demos is not None:
            mean["state_mmd"] = demo_distance(demos, visited, args.episodes)
        results[str(ckpt)] = {"episodes": runs, "mean": mean}
        print(f"{ckpt}: " + ", ".join(f"{key} {shown(key, value)}" for key, value in mean.items()))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": " ".join(["python -m benchmarks.reward_parts", *sys.argv[1:]]),
                                        "versions": package_versions(), "episodes_per_ckpt": args.episodes,
                                        "seed": args.seed, "demos": str(args.demos) if args.demos else None,
                                        **results}, indent=1))


if __name__ == "__main__":
    main()
