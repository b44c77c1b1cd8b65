"""Make and inspect demonstration files.

    python -m gail_lightning.demos record --ckpt EXPERT.ckpt --episodes 25 --out demos/hopper.npz
    python -m gail_lightning.demos info demos/hopper.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from gail_lightning.demonstrations import Demonstrations, load_demonstrations
from gail_lightning.envs import episode_return, make_env, rollout_episodes
from gail_lightning.module import GAILModule
from gail_lightning.provenance import package_versions


def record(
    ckpt: Path, episodes: int, seed: int, out: Path, env_id: str | None = None, command: str = ""
) -> Demonstrations:
    """Roll out an expert checkpoint deterministically and write its episodes to ``out``."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    env_id = env_id or checkpoint.get("datamodule_hyper_parameters", {}).get("env_id")
    if env_id is None:
        raise SystemExit(f"{ckpt} does not say which env it was trained on; pass --env-id.")
    module = GAILModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    torch.manual_seed(seed)
    env = make_env(env_id, seed=seed)
    runs = rollout_episodes(env, module.actor, episodes, deterministic=True)
    random_runs = rollout_episodes(make_env(env_id, seed=seed + 1), None, episodes)
    demos = Demonstrations.from_rollouts(
        runs,
        {
            "env_id": env_id,
            "random_return_mean": float(np.mean([episode_return(r) for r in random_runs])),
            "seed": seed,
            "expert_checkpoint": str(ckpt),
            "versions": package_versions(),
            "command": command,
        },
    )
    demos.save(out)
    return demos


def info(path: Path) -> str:
    """A short human-readable summary of a demonstration file."""
    demos = load_demonstrations(path)
    meta = demos.metadata
    lengths = demos.episode_lengths
    return "\n".join(
        [
            f"file:      {path}",
            f"env:       {meta['env_id']} (obs {meta['obs_dim']}, action {meta['action_dim']})",
            f"episodes:  {demos.num_episodes}, {len(demos.observations)} steps, "
            f"length min/mean/max {lengths.min()}/{lengths.mean():.1f}/{lengths.max()}",
            f"return:    expert {meta['expert_return_mean']:.1f} ± {meta['expert_return_std']:.1f}, "
            f"random {meta['random_return_mean']:.1f}",
            f"seed:      {meta['seed']}",
            f"made by:   {meta['command']}",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gail_lightning.demos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="expert checkpoint -> demonstration file")
    rec.add_argument("--ckpt", type=Path, required=True, help="checkpoint of a trained expert")
    rec.add_argument("--episodes", type=int, default=25)
    rec.add_argument("--seed", type=int, default=0, help="seed of the recording env")
    rec.add_argument("--out", type=Path, required=True, help="output .npz file")
    rec.add_argument("--env-id", default=None, help="defaults to the env the expert trained on")
    show = sub.add_parser("info", help="print what a demonstration file holds")
    show.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    if args.command == "record":
        command = " ".join(["python -m gail_lightning.demos", *(argv or sys.argv[1:])])
        record(args.ckpt, args.episodes, args.seed, args.out, args.env_id, command)
        print(info(args.out))
    else:
        print(info(args.path))


if __name__ == "__main__":
    main()
