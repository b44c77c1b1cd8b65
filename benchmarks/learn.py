"""Learning benchmark: train one config over several seeds, save scores and a learning curve.

    python benchmarks/learn.py --config configs/hopper.yaml --seeds 3 --out benchmarks/results/hopper
    python benchmarks/learn.py --config configs/hopper.yaml --seeds 3 --out DIR --jobs 2 -- --data.total_frames 500000

Each seed is a `train.py fit` run in its own process under <out>/seed_<s>. A seed whose
result is already saved is skipped, and an interrupted one resumes from its last.ckpt (or
parked.ckpt), so the benchmark can be filled over several sittings. checkpoints/ is ignored
by git and goes with the machine; a stopped run without a replay buffer (not SAC/DAC) also
leaves <out>/seed_<s>/parked.ckpt (about 2 MB), which git does not ignore: commit it and the
run resumes on another machine. Writes <out>/results.json and <out>/learning_curve.png.
Arguments after `--` pass through to train.py as overrides.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
STOP = threading.Event()
PARKED = "parked.ckpt"


def stop_on_sigterm() -> None:
    """On SIGTERM (``kill -TERM -- -PGID`` when a session ends) the trainings, which got it
    too, save their last.ckpt and exit; let them, record their wall time, start no other run.
    Python's default would end this process at once and lose the sitting's wall time."""
    signal.signal(signal.SIGTERM, lambda *_: STOP.set())


def eval_curve(run_dir: Path) -> list[dict[str, float]]:
    """Evaluations of a run, [{frames, eval/return, eval/normalized_score}], as ExpertScore saved
    them; none before the first."""
    path = run_dir / "eval_history.json"
    return json.loads(path.read_text()) if path.exists() else []


def time_to_score(run_dir: Path, threshold: float = 0.9) -> dict | None:
    """Frames and seconds from the start of training until the first evaluation scoring at
    least ``threshold``, from the wall times TensorBoard stores with every logged value;
    None if no evaluation got there, or if the folder holds more than one log."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(run_dir.rglob("events.out.tfevents.*"))
    if len(files) != 1:
        return None
    events = EventAccumulator(str(files[0]), size_guidance={"scalars": 0})
    events.Reload()
    frames = {e.step: e.value for e in events.Scalars("frames")}
    start = events.FirstEventTimestamp()
    for event in events.Scalars("eval/normalized_score"):
        if event.value >= threshold:
            return {"threshold": threshold, "frames": int(frames[event.step]), "wall_s": round(event.wall_time - start, 1)}
    return None


def run_seed(config: Path, seed: int, out: Path, overrides: list[str]) -> dict | None:
    """Train (or resume) one seed and summarise its evaluations; None if it stopped early."""
    run_dir = out / f"seed_{seed}"
    result_file = run_dir / "result.json"
    if result_file.exists():
        print(f"seed {seed}: already done ({result_file})", flush=True)
        return json.loads(result_file.read_text())
    if STOP.is_set():
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "train.py", "fit", "--config", str(config),
        f"--data.seed={seed}",
        f"--trainer.default_root_dir={run_dir}",
        "--trainer.enable_progress_bar=false",
        *overrides,
    ]
    last, parked = run_dir / "checkpoints" / "last.ckpt", run_dir / PARKED
    resumes = last.exists() or parked.exists()
    if last.exists():
        cmd.append("--ckpt_path=last")
    elif parked.exists():  # on another machine: checkpoints/ stayed with the last one
        cmd.append(f"--ckpt_path={parked}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print(f"seed {seed}: {' '.join(cmd)}", flush=True)
    # Wall time summed over the sittings of a resumed run; a run whose checkpoint was lost,
    # and not parked, starts again from frame 0, and so do its clock and its evaluations.
    wall_file = run_dir / "wall.json"
    previous = json.loads(wall_file.read_text())["wall_s"] if resumes and wall_file.exists() else 0.0
    if not resumes:
        (run_dir / "eval_history.json").unlink(missing_ok=True)
    start = time.time()
    try:
        with open(run_dir / "train.log", "a") as log:
            subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, check=True)
    finally:  # parked even after a crash, so parked.ckpt and wall.json stay of one moment
        wall = previous + time.time() - start
        wall_file.write_text(json.dumps({"wall_s": wall}))
        park(run_dir)
    curve = eval_curve(run_dir)
    budget = int(override_value(overrides, "--data.total_frames") or yaml.safe_load(config.read_text())["data"]["total_frames"])
    reached = curve[-1]["frames"] if curve else 0
    if reached < budget:  # stopped by a signal (exit 0): not a result yet
        print(f"seed {seed}: stopped at {reached} of {budget} frames; rerun to resume", flush=True)
        return None
    parked.unlink(missing_ok=True)
    scores = [p["eval/normalized_score"] for p in curve]
    result = {
        "seed": seed,
        "frames": curve[-1]["frames"],
        "wall_s": round(wall, 1),
        "frames_per_s": round(curve[-1]["frames"] / wall, 1),
        "final_normalized_score": scores[-1],
        "best_normalized_score": max(scores),
        "final_return": curve[-1]["eval/return"],
        # A resumed run's sittings' clocks differ, and one resumed on another machine lost
        # its first sittings' log.
        "time_to_0.9": None if resumes else time_to_score(run_dir),
        "curve": curve,
    }
    result_file.write_text(json.dumps(result, indent=1))
    print(f"seed {seed}: final score {scores[-1]:.3f}, best {max(scores):.3f}, "
          f"return {curve[-1]['eval/return']:.1f}, {wall:.0f} s", flush=True)
    return result


def park(run_dir: Path) -> None:
    """Copy the run's last.ckpt to <run>/parked.ckpt, which git does not ignore: a
    session's machine, and checkpoints/ with it, can end with the session, and a committed
    parked.ckpt resumes the run on the next one. An off-policy run is not parked: its replay
    buffer (never committed) would stay behind, so it could not resume as it was."""
    last = run_dir / "checkpoints" / "last.ckpt"
    if last.is_file() and not (run_dir / "replay_buffer").exists():
        tmp = run_dir / f"{PARKED}.tmp"  # a copy cut short leaves no half checkpoint to resume from
        shutil.copyfile(last, tmp)
        tmp.replace(run_dir / PARKED)


def override_value(overrides: list[str], key: str) -> str | None:
    """Value given to ``key`` in CLI overrides, as ``key=v`` or ``key v``; the last one wins."""
    value = None
    for i, item in enumerate(overrides):
        if item.startswith(key + "="):
            value = item.split("=", 1)[1]
        elif item == key and i + 1 < len(overrides):
            value = overrides[i + 1]
    return value


def method_name(config: dict, overrides: list[str]) -> str:
    """GAIL-PPO, GAIL-TRPO or the model class a config trains, for titles."""
    model = config.get("model", {})
    if "class_path" in model:
        return model["class_path"].rsplit(".", 1)[-1]
    optimizer = override_value(overrides, "--model.policy_optimizer") or model.get("policy_optimizer", "ppo")
    return f"GAIL-{optimizer.upper()}"


def plot(results: dict, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in results["runs"]:
        frames = [p["frames"] for p in run["curve"]]
        ax.plot(frames, [p["eval/normalized_score"] for p in run["curve"]], label=f"seed {run['seed']}")
    ax.axhline(1.0, color="gray", linestyle="--", linewidth=1, label="expert")
    bc = results["method"] == "BCModule"  # BC's "frames" count expert samples through the gradient
    ax.set_xlabel("expert samples through the gradient" if bc else "environment frames")
    ax.set_ylabel("normalized score")
    ax.set_title(f"{results['method']} on {results['env_id']}, {results['num_trajectories']} expert trajectories")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=3, help="runs seeds first..first+N-1")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained at once")
    args, overrides = parser.parse_known_args()
    overrides = [o for o in overrides if o != "--"]
    stop_on_sigterm()
    config = yaml.safe_load(args.config.read_text())
    out = args.out.resolve()
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = [r for r in pool.map(lambda s: run_seed(args.config.resolve(), s, out, overrides),
                                    range(args.first_seed, args.first_seed + args.seeds)) if r is not None]
    data = config["data"]
    num_traj = override_value(overrides, "--data.num_trajectories") or data.get("num_trajectories")
    results = {
        "method": method_name(config, overrides),
        "env_id": data["env_id"],
        "num_trajectories": int(num_traj) if num_traj is not None else None,
        "config": str(args.config),
        "overrides": overrides,
        "runs": runs,
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "learning_curve.png")
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}))
    for run in runs:
        print({k: v for k, v in run.items() if k != "curve"})


if __name__ == "__main__":
    main()
