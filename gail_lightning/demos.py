"""Make, inspect and convert demonstration files.

    python -m gail_lightning.demos record --ckpt EXPERT.ckpt --episodes 25 --out demos/hopper.npz
    python -m gail_lightning.demos info demos/hopper.npz
    python -m gail_lightning.demos import-minari DATASET --out demos/mine.npz
    python -m gail_lightning.demos export-minari demos/hopper.npz --dataset-id gail/hopper/expert-v0
    python -m gail_lightning.demos manifest demos
    python -m gail_lightning.demos render --ckpt EXPERT.ckpt --out hopper.gif
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
from pathlib import Path

import torch

from gail_lightning.demonstrations import Demonstrations, load_demonstrations
from gail_lightning.envs import make_env, random_policy_return, rollout_episodes
from gail_lightning.errors import UserInputError
from gail_lightning.minari_io import from_minari, to_minari
from gail_lightning.online_module import OnlineModule
from gail_lightning.provenance import package_versions
from gail_lightning.settings import GAIL_CLASS, upgrade_hparams
from gail_lightning.video import check_video_path, render_episode, write_video


def load_expert(ckpt: Path, checkpoint: dict) -> OnlineModule:
    """The module in ``ckpt`` (read into ``checkpoint``), of the class that wrote it (GAIL,
    PPO, SAC, BC), with its settings in today's names (``settings.upgrade_hparams``)."""
    hparams = upgrade_hparams(checkpoint["hyper_parameters"])
    hparams.pop("_instantiator", None)
    module_name, _, class_name = hparams.pop("_class_path", GAIL_CLASS).rpartition(".")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not issubclass(cls, OnlineModule):
        raise SystemExit(f"{ckpt} holds a {cls.__name__}, not a trained policy of this project.")
    module = cls(**hparams)
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"])
    return module


def load_policy(ckpt: Path, env_id: str | None) -> tuple[OnlineModule, str, dict]:
    """The module in ``ckpt``, in eval mode, and the env (and env options) it trained on."""
    if not Path(ckpt).is_file():
        raise UserInputError(f"no checkpoint file at {ckpt}: pass a run's checkpoints/last.ckpt or experts/*.ckpt.")
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=False)
    data = checkpoint.get("datamodule_hyper_parameters", {})
    env_id = env_id or data.get("env_id")
    if env_id is None:
        raise SystemExit(f"{ckpt} does not say which env it was trained on; pass --env-id.")
    return load_expert(ckpt, checkpoint).eval(), env_id, data.get("env_kwargs") or {}


def record(
    ckpt: Path, episodes: int, seed: int, out: Path, env_id: str | None = None, command: str = ""
) -> Demonstrations:
    """Roll out an expert checkpoint deterministically and write its episodes to ``out``."""
    module, env_id, env_kwargs = load_policy(ckpt, env_id)
    torch.manual_seed(seed)
    env = make_env(env_id, seed=seed, env_kwargs=env_kwargs)
    runs = rollout_episodes(env, module.actor, episodes, deterministic=True)
    demos = Demonstrations.from_rollouts(
        runs,
        {
            "env_id": env_id,
            "env_kwargs": env_kwargs,
            "random_return_mean": random_policy_return(env_id, episodes, seed + 1, env_kwargs),
            "seed": seed,
            "expert_checkpoint": str(ckpt),
            "versions": package_versions(),
            "command": command,
        },
    )
    demos.save(out)
    return demos


def info(path: Path, demos: Demonstrations | None = None) -> str:
    """A short human-readable summary of a demonstration file."""
    demos = demos or load_demonstrations(path)
    meta = demos.metadata
    lengths = demos.episode_lengths
    options = f" {meta['env_kwargs']}" if meta.get("env_kwargs") else ""
    return "\n".join(
        [
            f"file:      {path}",
            f"env:       {meta['env_id']}{options} (obs {meta['obs_dim']}, action {meta['action_dim']})",
            f"episodes:  {demos.num_episodes}, {len(demos.observations)} steps, "
            f"length min/mean/max {lengths.min()}/{lengths.mean():.1f}/{lengths.max()}",
            f"return:    expert {meta['expert_return_mean']:.1f} ± {meta['expert_return_std']:.1f}, "
            f"random {meta['random_return_mean']:.1f}",
            f"seed:      {meta['seed']}",
            f"made by:   {meta['command']}",
        ]
    )


def manifest(folder: Path) -> list[dict]:
    """One entry per demonstration file in ``folder``: what it holds and how it was made."""
    entries = []
    for path in sorted(folder.glob("*.npz")):
        demos = load_demonstrations(path)
        meta = demos.metadata
        entries.append({
            "file": path.name,
            "env_id": meta["env_id"],
            "env_kwargs": meta.get("env_kwargs", {}),
            "episodes": demos.num_episodes,
            "expert_return_mean": meta["expert_return_mean"],
            "expert_return_std": meta["expert_return_std"],
            "random_return_mean": meta["random_return_mean"],
            "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "versions": meta["versions"],
            "command": meta["command"],
        })
    return entries


def manifest_table(entries: list[dict]) -> str:
    """``manifest``'s entries as the markdown page ``demos/README.md``, written beside it."""
    lines = [
        "# Shipped demonstrations",
        "",
        "Generated from `manifest.json` by `python -m gail_lightning.demos manifest demos`; do not edit.",
        "",
        "| file | env | episodes | expert return | random return | size | made by |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in entries:
        env = e["env_id"] + (f" `{e['env_kwargs']}`" if e["env_kwargs"] else "")
        lines.append(
            f"| `{e['file']}` | {env} | {e['episodes']} | {e['expert_return_mean']:.1f} ± "
            f"{e['expert_return_std']:.1f} | {e['random_return_mean']:.1f} | {e['bytes'] / 2**20:.1f} MB | "
            f"`{e['command']}` |"
        )
    return "\n".join(lines) + "\n"


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
    imp = sub.add_parser("import-minari", help="local Minari dataset -> demonstration file")
    imp.add_argument("dataset", help="dataset folder, or id under $MINARI_DATASETS_PATH")
    imp.add_argument("--out", type=Path, required=True, help="output .npz file")
    imp.add_argument("--env-id", default=None, help="defaults to the dataset's env")
    exp = sub.add_parser("export-minari", help="demonstration file -> local Minari dataset")
    exp.add_argument("path", type=Path, help="demonstration file (.npz)")
    exp.add_argument("--dataset-id", required=True, help="e.g. gail_lightning/hopper/expert-v0")
    exp.add_argument("--root", type=Path, default=None,
                     help="datasets folder (default $MINARI_DATASETS_PATH or ~/.minari/datasets)")
    ren = sub.add_parser("render", help="checkpoint -> GIF or MP4 of one deterministic episode")
    ren.add_argument("--ckpt", type=Path, required=True, help="checkpoint of a trained policy (GAIL, PPO, SAC, BC)")
    ren.add_argument("--out", type=Path, required=True, help="output .gif or .mp4 file")
    ren.add_argument("--seed", type=int, default=0, help="seed of the episode's reset")
    ren.add_argument("--max-steps", type=int, default=1000)
    ren.add_argument("--size", type=int, default=160, help="frame width and height in pixels")
    ren.add_argument("--every", type=int, default=2, help="keep every k-th step's frame")
    ren.add_argument("--env-id", default=None, help="defaults to the env the policy trained on")
    man = sub.add_parser("manifest", help="write <folder>/manifest.json and README.md describing every .npz in it")
    man.add_argument("folder", type=Path, nargs="?", default=Path("demos"))
    args = parser.parse_args(argv)
    command = " ".join(["python -m gail_lightning.demos", *(argv or sys.argv[1:])])
    try:
        if args.command == "record":
            record(args.ckpt, args.episodes, args.seed, args.out, args.env_id, command)
            print(info(args.out))
        elif args.command == "info":
            print(info(args.path))
        elif args.command == "import-minari":
            from_minari(args.dataset, args.env_id, command).save(args.out)
            print(info(args.out))
        elif args.command == "render":
            check_video_path(args.out)
            module, env_id, env_kwargs = load_policy(args.ckpt, args.env_id)
            frames = render_episode(module.actor, env_id, env_kwargs, args.seed, args.max_steps,
                                    args.size, args.every)
            print(f"wrote {write_video(frames, args.out)}: {len(frames)} frames of {env_id}")
        elif args.command == "manifest":
            entries = manifest(args.folder)
            (args.folder / "manifest.json").write_text(json.dumps(entries, indent=1) + "\n")
            (args.folder / "README.md").write_text(manifest_table(entries))
            print(f"wrote {args.folder / 'manifest.json'} and README.md: {len(entries)} files")
        else:
            folder = to_minari(load_demonstrations(args.path), args.dataset_id, args.root)
            print(f"wrote Minari dataset {args.dataset_id} to {folder}")
    except UserInputError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
