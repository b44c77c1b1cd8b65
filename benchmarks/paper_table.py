"""The GAIL-vs-BC table: run a grid of methods × tasks × trajectories × seeds, then render it.

    python -m benchmarks.paper_table                       # run what is missing, then render
    python -m benchmarks.paper_table --only hopper --jobs 2
    python -m benchmarks.paper_table --method BC           # the cheap cells first
    python -m benchmarks.paper_table --only hopper --method GAIL-PPO --trajectories 25
    python -m benchmarks.paper_table --render-only

The grid is benchmarks/paper_grid.yaml. Each cell is a `benchmarks/learn.py` seed run under
benchmarks/results/paper/<method>/<task>/traj_<N>/seed_<s>; a run whose result.json exists
is skipped and an interrupted one resumes, so the grid fills over several sittings; commit
a stopped cell's parked.ckpt and it resumes on another machine too (`benchmarks/learn.py`;
an off-policy cell cannot be carried so: its replay buffer stays with the machine). A cell
the grid's `sources` maps to an existing learn.py run folder is read (and run) there.
Renders benchmarks/results/paper_table.md (final normalized score mean ± std over seeds and
raw return, expert and random references per task) and one learning-curve PNG per task
and trajectory count. Cells not run yet show "—".

A score near 1 can be survival (see the `control*` columns): so each finished cell that
kept its checkpoints/last.ckpt also gets state_mmd.json, the distance between its final
policy's state occupancy and the task's demonstrations' (`benchmarks/reward_parts.py`),
written once and tabled beside the scores. Running a finished cell's command again measures it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib
import numpy as np
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks import reward_parts
from benchmarks.learn import ROOT, STOP, run_seed, stop_on_sigterm
from gail_lightning.demonstrations import load_demonstrations

GRID = Path(__file__).resolve().parent / "paper_grid.yaml"
RESULTS = Path(__file__).resolve().parent / "results"
MEASURED_EPISODES = 5  # deterministic episodes of a finished cell's policy (reward_parts.EPISODE_SEED on)


def cells(
    grid: dict, only: str | None = None, method: str | None = None, trajectories: int | None = None
) -> list[tuple[str, str, int, int]]:
    """(method, task, trajectories, seed) of every run in the grid, or of one task's, method's
    or trajectory count's."""
    out = []
    for row in grid["rows"]:
        if only is None or row["task"] == only:
            methods = [m for m in row["methods"] if method is None or m == method]
            counts = [n for n in row["trajectories"] if trajectories is None or n == trajectories]
            out += itertools.product(methods, [row["task"]], counts, range(row["seeds"]))
    return out


def cell_dir(grid: dict, results: Path, method: str, task: str, trajectories: int) -> Path:
    """The cell's own folder, or the run folder the grid's ``sources`` names for it."""
    source = grid.get("sources", {}).get(f"{method}/{task}/{trajectories}")
    return results / source if source else results / "paper" / method / task / f"traj_{trajectories}"


def cell_overrides(grid: dict, method: str, task: str, trajectories: int) -> list[str]:
    """train.py overrides of a cell: its trajectory count, then the method's, then its row's."""
    row = next(r for r in grid["rows"]
               if r["task"] == task and method in r["methods"] and trajectories in r["trajectories"])
    return [f"--data.num_trajectories={trajectories}", *grid["methods"][method].get("overrides", []),
            *row.get("overrides", [])]


def run_cell(grid: dict, results: Path, method: str, task: str, trajectories: int, seed: int) -> None:
    config = ROOT / grid["methods"][method]["config"].format(task=task)
    out = cell_dir(grid, results, method, task, trajectories)
    try:
        run_seed(config, seed, out, cell_overrides(grid, method, task, trajectories))
    except subprocess.CalledProcessError:  # one failed cell must not stop the grid
        print(f"{method} {task} {trajectories} seed {seed}: FAILED, see {out}/seed_{seed}/train.log",
              flush=True)
        return
    try:
        measure_cell(out / f"seed_{seed}", ROOT / "demos" / f"{task}.npz")
    except (Exception, SystemExit) as err:  # noqa: BLE001 - whatever fails, an unmeasured cell must not stop the grid
        print(f"{method} {task} {trajectories} seed {seed}: not measured ({err})", flush=True)


def measure_cell(run_dir: Path, demos: Path, episodes: int = MEASURED_EPISODES) -> None:
    """Write the finished run's state_mmd.json: its last policy's state occupancy against ``demos``,
    with the reward parts of the same episodes. Unfinished runs, runs without a checkpoint
    (saved before the grid kept them) and runs already measured are left as they are, and
    nothing starts once the grid is told to stop."""
    ckpt, out = run_dir / "checkpoints" / "last.ckpt", run_dir / "state_mmd.json"
    if STOP.is_set() or out.exists() or not all(path.is_file() for path in (run_dir / "result.json", ckpt, demos)):
        return
    reference = load_demonstrations(demos)
    reward_parts.check_demos(reference, demos, ckpt)
    runs, visited = reward_parts.episode_parts(ckpt, episodes, reward_parts.EPISODE_SEED)
    mmd = reward_parts.demo_distance(reference, visited, episodes)
    tmp = out.with_suffix(".tmp")  # a run killed while writing leaves no half file to be read
    tmp.write_text(json.dumps({"state_mmd": mmd, "demos": demos.name, "episodes": episodes,
                               "seed": reward_parts.EPISODE_SEED, "mean": reward_parts.summary(runs)}, indent=1))
    tmp.replace(out)
    print(f"{run_dir}: state MMD² to {demos.name} {mmd:.3f}", flush=True)


def load_results(grid: dict, results: Path, refs: dict[str, dict]) -> dict[tuple[str, str, int], list[dict]]:
    """Every saved seed result, by (method, task, trajectories); stops at one scored against
    other expert and random returns than ``refs`` holds for its task (the shipped
    demonstrations': an expert re-recorded since the run makes it stale)."""
    found: dict[tuple[str, str, int], list[dict]] = {}
    for method, task, n, seed in cells(grid):
        path = cell_dir(grid, results, method, task, n) / f"seed_{seed}" / "result.json"
        if path.is_file():
            result = json.loads(path.read_text())
            if task in refs and not scored_against(result, refs[task]):
                raise SystemExit(f"error: {path.parent} was scored against other {task} demonstrations "
                                 f"than demos/{task}.npz: move it out of {results} and run its cell again")
            measured = path.parent / "state_mmd.json"
            if measured.is_file():
                result["state_mmd"] = json.loads(measured.read_text())["state_mmd"]
            found.setdefault((method, task, n), []).append(result)
    return found


def scored_against(result: dict, ref: dict) -> bool:
    """Whether the run's normalized scores are its returns scaled by these expert and random
    returns: the references are the demonstrations' own, so a re-recorded expert changes them."""
    return all(
        math.isclose(p["eval/normalized_score"], (p["eval/return"] - ref["random"]) / (ref["expert"] - ref["random"]),
                     rel_tol=1e-6, abs_tol=1e-9)
        for p in result["curve"]
    )


def mean_std(values: list[float], digits: int = 2) -> str:
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {std:.{digits}f}"


def render(grid: dict, results: Path, references: dict[str, dict]) -> str:
    """The markdown table: one row per task and trajectory count, one column per method."""
    found = load_results(grid, results, references)
    methods = list(grid["methods"])
    header = "| task | trajectories | " + " | ".join(methods) + " |"
    lines = [
        "# GAIL vs BC",
        "",
        "Final normalized score, mean ± std over seeds (score 1 = expert, 0 = random policy),",
        "then mean raw return and seeds run. Generated by `python -m benchmarks.paper_table`.",
        "",
        header,
        "|" + "---|" * (len(methods) + 2),
    ]
    rows = sorted({(row["task"], n) for row in grid["rows"] for n in row["trajectories"]})
    for task, n in rows:
        entries = []
        for method in methods:
            runs = found.get((method, task, n))
            if not runs:
                entries.append("—")
                continue
            scores = [r["final_normalized_score"] for r in runs]
            returns = [r["final_return"] for r in runs]
            seeds = f"{len(runs)} seed" + ("s" if len(runs) > 1 else "")
            entries.append(f"{mean_std(scores)} ({statistics.mean(returns):.0f}; {seeds})")
        lines.append(f"| {task} | {n} | " + " | ".join(entries) + " |")
    lines += state_mmd_table(found, methods)
    lines += ["", "| task | expert return | random return |", "|---|---|---|"]
    for task, ref in sorted(references.items()):
        lines.append(f"| {task} | {ref['expert']:.1f} | {ref['random']:.1f} |")
    lines += ["", "Budget of one run (GAIL: env frames; BC: expert samples through the gradient) and its",
              "mean wall time on this 2-core machine, usually sharing it with a second run:", "",
              "| task | method | frames per run | minutes per run |", "|---|---|---|---|"]
    for (method, task), runs in sorted(budgets(found).items(), key=lambda item: item[0][::-1]):
        frames = "/".join(f"{f:,}" for f in sorted({r["frames"] for r in runs}))
        minutes = statistics.mean(r["wall_s"] for r in runs) / 60
        lines.append(f"| {task} | {method} | {frames} | {minutes:.0f} |")
    return "\n".join(lines) + "\n"


def state_mmd_table(found: dict[tuple[str, str, int], list[dict]], methods: list[str]) -> list[str]:
    """The measured cells' state MMD² to their task's demonstrations, one row per task and
    trajectory count, one column per method measured (in ``methods``' order); no lines when
    none is."""
    measured = {key: [r["state_mmd"] for r in runs if "state_mmd" in r] for key, runs in found.items()}
    measured = {key: values for key, values in measured.items() if values}
    if not measured:
        return []
    methods = [method for method in methods if any(key[0] == method for key in measured)]
    lines = ["", "Distance of each final policy's state occupancy from the demonstrations': squared MMD over the",
             "time limit, the steps lost to an early end counted as one absorbing state; mean ± std over the",
             f"seeds measured (0 = the expert's; `benchmarks/reward_parts.py`, {MEASURED_EPISODES} episodes each).",
             "A score near 1 with a large distance is survival, not imitation.", "",
             "| task | trajectories | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 2)]
    for task, n in sorted({(task, n) for _, task, n in measured}):
        entries = []
        for method in methods:
            values = measured.get((method, task, n))
            entries.append(f"{mean_std(values, 3)} ({len(values)})" if values else "—")
        lines.append(f"| {task} | {n} | " + " | ".join(entries) + " |")
    return lines


def budgets(found: dict[tuple[str, str, int], list[dict]]) -> dict[tuple[str, str], list[dict]]:
    """The runs of each (method, task) over all trajectory counts, for the budget table."""
    out: dict[tuple[str, str], list[dict]] = {}
    for (method, task, _), runs in found.items():
        out.setdefault((method, task), []).extend(r for r in runs if "frames" in r and "wall_s" in r)
    return {key: runs for key, runs in out.items() if runs}


def score_band(runs: list[dict]) -> tuple[list[float], list[float], list[float], list[float]]:
    """Frames, then mean, min and max normalized score over seeds at each frame count of the
    first seed's curve (the others' curves interpolated there)."""
    frames = [p["frames"] for p in runs[0]["curve"]]
    curves = [np.interp(frames, [p["frames"] for p in r["curve"]], [p["eval/normalized_score"] for p in r["curve"]])
              for r in runs]
    return frames, *(list(f(curves, axis=0)) for f in (np.mean, np.min, np.max))


def flat_method(grid: dict, method: str) -> bool:
    """Methods drawn as a horizontal line at their final score: BC, which steps no env, and
    the survival-only controls, a floor for the GAIL curves beside them."""
    return "/bc/" in grid["methods"][method]["config"] or method.startswith("control")


def plot_curves(grid: dict, results: Path, out: Path, refs: dict[str, dict]) -> list[Path]:
    """One PNG per (task, trajectories): each GAIL method's mean normalized score over seeds
    with its min-max band, BC and the controls as lines at their mean final score; one
    colour per method, the same in every plot."""
    found = load_results(grid, results, refs)
    # tab20 without its greys (the expert line's colour), dark shades first
    palette = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (14, 15)]
    order = list(range(0, len(palette), 2)) + list(range(1, len(palette), 2))
    colours = {m: palette[order[i % len(order)]] for i, m in enumerate(grid["methods"])}
    written = []
    for task, n in sorted({(t, k) for (_, t, k) in found}):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for method in grid["methods"]:
            runs = [r for r in found.get((method, task, n), []) if r.get("curve")]
            if not runs:
                continue
            label = f"{method} ({len(runs)} seed{'s' if len(runs) > 1 else ''})"
            if flat_method(grid, method):
                final = float(np.mean([r["final_normalized_score"] for r in runs]))
                ax.axhline(final, color=colours[method], linestyle=":" if method.startswith("control") else "-.",
                           linewidth=1.5, label=f"{label}, final")
                continue
            frames, mean, low, high = score_band(runs)
            ax.plot(frames, mean, color=colours[method], label=label)
            ax.fill_between(frames, low, high, color=colours[method], alpha=0.2, linewidth=0)
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="expert")
        ax.set_xlabel("environment frames")
        ax.set_ylabel("normalized score (mean, min-max band over seeds)")
        ax.set_title(f"{task}, {n} expert trajectories")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out / f"paper_{task}_traj{n}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def references(grid: dict) -> dict[str, dict]:
    """Expert and random returns of each task's shipped demonstrations."""
    refs = {}
    for task in sorted({row["task"] for row in grid["rows"]}):
        path = ROOT / "demos" / f"{task}.npz"
        if path.is_file():
            meta = load_demonstrations(path).metadata
            refs[task] = {"expert": meta["expert_return_mean"], "random": meta["random_return_mean"]}
    return refs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", type=Path, default=GRID)
    parser.add_argument("--only", help="run only this task's cells (e.g. hopper)")
    parser.add_argument("--method", help="run only this method's cells (e.g. BC)")
    parser.add_argument("--trajectories", type=int, help="run only cells with this many trajectories")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    grid = yaml.safe_load(args.grid.read_text())
    if not args.render_only:
        stop_on_sigterm()
        todo = cells(grid, args.only, args.method, args.trajectories)
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda cell: run_cell(grid, RESULTS, *cell), todo))
    refs = references(grid)
    table = render(grid, RESULTS, refs)
    (RESULTS / "paper_table.md").write_text(table)
    plot_curves(grid, RESULTS, RESULTS, refs)
    print(table)


if __name__ == "__main__":
    main()
