"""Frames per second of the pieces of a GAIL run, measured in one go on one machine.

    python benchmarks/throughput.py --config configs/hopper.yaml --frames 200000
    python benchmarks/throughput.py --config configs/hopper.yaml -- --trainer.accelerator=gpu --trainer.precision=bf16-mixed
    python benchmarks/throughput.py --config configs/hopper.yaml --tag ddp2 --parts c -- --trainer.strategy=ddp --trainer.devices=2 --data.num_envs=4 --data.frames_per_batch=1024 --model.ppo.minibatch_size=128

(a) plain gymnasium stepping with random actions, one process: the reference;
(b) our collection alone (the config's rollout workers, each batch requested when the
    previous one arrived);
(c) our full GAIL training loop (collect + discriminator + PPO/TRPO), `trainer.fit`;
(d) the `imitation` library's GAIL (SB3 PPO) with its documented example settings on 1
    and part (c)'s env count, and with its tuned Hopper settings on 8 envs, from
    benchmarks/peer/.venv (made by benchmarks/peer/setup.sh; skipped if absent).
Each part runs in its own process, so its peak RSS is its own; with `--rounds N` (2 by
default) all parts run N times, interleaved, and each part's fastest run counts: this
machine's speed drifts by a third over minutes, and the best of interleaved runs compares
the parts at their least disturbed. Arguments after `--` are
train.py overrides for part (c); those of `--data.*` also set parts (b) and (d). Prints a
table and writes <out>/<env_id>.json (or <out>/<env_id>-<tag>.json with --tag) with the
rates, the ratios (c)/(a) and (c)/(d), and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT / "benchmarks" / "peer"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def raw_gym(config: dict, frames: int) -> dict:
    import gymnasium as gym

    env = gym.make(config["data"]["env_id"], **(config["data"].get("env_kwargs") or {}))
    env.reset(seed=0)
    env.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(frames):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    return {"frames": frames, "wall_s": time.perf_counter() - start}


def collection(config: dict, frames: int) -> dict:
    """The config's rollouts alone, every batch requested after the previous one arrived."""
    from gail_lightning.data import CollectorDataModule
    from gail_lightning.networks import RunningNorm, make_actor

    dm = CollectorDataModule(**{**config["data"], "demos": None, "overlap": False})
    actor = make_actor(RunningNorm(dm.obs_dim), dm.obs_dim, dm.action_low, dm.action_high,
                       config["model"].get("hidden_sizes", (100, 100)))
    dm.rollouts.start(actor, seed=0)
    next(dm.rollouts)  # workers built and warm
    seen, start = 0, time.perf_counter()
    for batch in dm.rollouts:  # the rollouts training uses, endless
        seen += batch.numel()
        if seen >= frames:
            break
    wall = time.perf_counter() - start
    dm.rollouts.close()
    return {"frames": seen, "wall_s": wall}


def training(config_path: Path, frames: int, overrides: list[str]) -> dict:
    from gail_lightning.cli import GAILCLI
    from gail_lightning.data import CollectorDataModule
    from gail_lightning.online_module import OnlineModule

    with tempfile.TemporaryDirectory() as root:
        cli = GAILCLI(
            OnlineModule, CollectorDataModule, subclass_mode_model=True, run=False,
            args=["--config", str(config_path), f"--data.total_frames={frames}",
                  "--eval.eval_every_frames=1000000000", "--eval.episodes=1", "--data.val_episodes=1",
                  f"--trainer.default_root_dir={root}", "--trainer.logger=false",
                  "--trainer.enable_progress_bar=false", *overrides],
        )
        start = time.perf_counter()
        cli.trainer.fit(cli.model, cli.datamodule)
        wall = time.perf_counter() - start
        return {"frames": int(cli.model.frames), "wall_s": wall}


def in_child(part: str, config: Path, frames: int, overrides: list[str] = ()) -> dict:
    """Run one part in a fresh process; its result with frames/s and peak RSS."""
    proc = subprocess.run(
        [sys.executable, __file__, "--config", str(config), "--frames", str(frames), "--part", part,
         "--", *overrides],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"part {part} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peer(frames: int, n_envs: int, settings: str) -> dict | None:
    python = PEER / ".venv" / "bin" / "python"
    if not (PEER / ".venv" / "READY").exists():
        print("(d) skipped: no finished benchmarks/peer/.venv; run bash benchmarks/peer/setup.sh "
              "to compare with imitation", flush=True)
        return None
    proc = subprocess.run(
        [str(python), str(PEER / "imitation_gail.py"), "--frames", str(frames), "--n-envs", str(n_envs),
         "--settings", settings],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"imitation GAIL failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "throughput")
    parser.add_argument("--tag", default="", help="suffix of the result file, e.g. gpu-bf16")
    parser.add_argument("--parts", default="abcd", help="which parts to run, e.g. c")
    parser.add_argument("--rounds", type=int, default=2,
                        help="run every part this many times, interleaved; the fastest counts")
    parser.add_argument("--part", choices=["a", "b", "c"], help=argparse.SUPPRESS)  # child process
    args, overrides = parser.parse_known_args()
    overrides = [o for o in overrides if o != "--"]
    config = yaml.safe_load(args.config.read_text())
    for override in overrides:  # --data.* overrides apply to parts (b) and (d) too
        if override.startswith("--data.") and "=" in override:
            key, value = override[len("--data."):].split("=", 1)
            config["data"][key] = yaml.safe_load(value)
    if args.part:
        run = {"a": lambda: raw_gym(config, args.frames), "b": lambda: collection(config, args.frames),
               "c": lambda: training(args.config, args.frames, overrides)}[args.part]()
        if os.environ.get("LOCAL_RANK", "0") == "0":  # under DDP (part c) rank 0 reports
            print(json.dumps({**run, "frames_per_s": run["frames"] / run["wall_s"], "peak_rss_mb": peak_rss_mb()}))
        return

    from gail_lightning.provenance import package_versions

    n_envs = config["data"].get("num_envs", 1)  # part (d) runs with part (c)'s env count
    runs = {name: (lambda name=name: in_child(name, args.config, args.frames, overrides))
            for name in "abc" if name in args.parts}
    if "d" in args.parts:
        for n in sorted({1, n_envs}):
            runs[f"d_{n}_envs"] = lambda n=n: peer(args.frames, n, "example")
        runs["d_tuned_8_envs"] = lambda: peer(args.frames, 8, "tuned")
    # Every part once per round, rounds one after another; each part's fastest round counts
    # (timeit's rule: the least disturbed run), its other rounds are kept in the JSON.
    parts: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, run in runs.items():
            if (result := run()) is None:
                continue
            rounds = parts.get(name, {}).get("rounds_frames_per_s", []) + [result["frames_per_s"]]
            if name not in parts or result["frames_per_s"] > parts[name]["frames_per_s"]:
                parts[name] = result
            parts[name]["rounds_frames_per_s"] = rounds
    rate = {k: v["frames_per_s"] for k, v in parts.items()}
    ratios = {"c/a": rate["c"] / rate["a"]} if {"a", "c"} <= rate.keys() else {}
    if "c" in rate and f"d_{n_envs}_envs" in rate:
        ratios[f"c/d ({n_envs} envs)"] = rate["c"] / rate[f"d_{n_envs}_envs"]
    report = {"config": str(args.config), "overrides": overrides, "env_id": config["data"]["env_id"], "frames": args.frames,
              "rounds": args.rounds,
              "num_envs": n_envs, "cpu_count": os.cpu_count(), "parts": parts, "ratios": ratios,
              "versions": package_versions()}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{config['data']['env_id']}{'-' + args.tag if args.tag else ''}.json"
    path.write_text(json.dumps(report, indent=1))
    for name, part in parts.items():
        print(f"({name}) {part['frames_per_s']:9.0f} frames/s  peak RSS {part['peak_rss_mb']:6.0f} MB")
    for name, value in ratios.items():
        print(f"{name} = {value:.2f}")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
