#!/usr/bin/env bash
# The `imitation` library's GAIL, for benchmarks/throughput.py part (d), in its own venv:
# imitation pins gymnasium 0.29 (MuJoCo v4 envs), which cannot share ours (1.x, v5 envs).
#   bash benchmarks/peer/setup.sh        # makes benchmarks/peer/.venv
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install -q torch==2.13.0                      # the CPU build, first
.venv/bin/pip install -q "imitation==1.0.1" "gymnasium[mujoco]==0.29.1" "mujoco>=3.1,<3.2"
.venv/bin/python -c "import imitation, gymnasium; gymnasium.make('Hopper-v4'); print('peer venv ready:', imitation.__version__)"
touch .venv/READY  # benchmarks/throughput.py runs part (d) only once this exists
