"""Time to a normalized score of 0.9 on Hopper: ours (a learn.py result folder) against the
`imitation` library's GAIL with its tuned Hopper settings, same demos, same machine.

    python benchmarks/time_to_score.py --ours benchmarks/results/hopper_overlap --seeds 3
    python benchmarks/time_to_score.py --ours benchmarks/results/hopper_overlap --report-only

Runs each missing imitation seed (benchmarks/peer/.venv; up to 3M frames, evaluated every
49,152, stopped at the first score >= 0.9) into <out>/imitation_seed_<s>.json, then writes
<out>/time_to_score.json and <out>/time_to_score.png: frames and wall seconds per seed.
Run it with nothing else on the machine: wall seconds are only comparable that way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT / "benchmarks" / "peer"


def imitation_seed(seed: int, out: Path) -> dict:
    path = out / f"imitation_seed_{seed}.json"
    if not path.exists():
        proc = subprocess.run(
            [str(PEER / ".venv" / "bin" / "python"), str(PEER / "imitation_gail.py"), "--settings", "tuned",
             "--frames", "3000000", "--eval-every", "49152", "--stop-at", "0.9", "--seed", str(seed)],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )
        path.write_text(proc.stdout.strip().splitlines()[-1])
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ours", type=Path, required=True, help="a benchmarks/learn.py output folder")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "time_to_score")
    parser.add_argument("--report-only", action="store_true", help="use only imitation seeds already run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    ours = [json.loads(p.read_text()) for p in sorted(args.ours.glob("seed_*/result.json"))]
    theirs = [json.loads(p.read_text()) for p in sorted(args.out.glob("imitation_seed_*.json"))] \
        if args.report_only else [imitation_seed(s, args.out) for s in range(args.seeds)]
    report = {
        "threshold": 0.9,
        "gail_lightning": [{"seed": r["seed"], **(r["time_to_0.9"] or {})} for r in ours],
        "imitation_tuned": [{"seed": r["seed"], **(r["time_to_0.9"] or {})} for r in theirs],
    }
    (args.out / "time_to_score.json").write_text(json.dumps(report, indent=1))
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, marker in (("gail_lightning", "o"), ("imitation_tuned", "s")):
        points = [p for p in report[name] if "wall_s" in p]
        ax.scatter([p["frames"] for p in points], [p["wall_s"] for p in points], marker=marker, label=name)
    ax.set_xlabel("frames until normalized score >= 0.9")
    ax.set_ylabel("wall seconds until then")
    ax.set_title("Hopper-v5/v4, 4 expert trajectories, per seed")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out / "time_to_score.png", dpi=120)
    for name in ("gail_lightning", "imitation_tuned"):
        for p in report[name]:
            print(name, p)


if __name__ == "__main__":
    main()
