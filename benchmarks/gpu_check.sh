#!/usr/bin/env bash
# GPU checks, for a session lent the device machine (see the `device` tool): run from the
# repository root there, e.g. through the tool with a 540 s limit:
#   bash benchmarks/gpu_check.sh
# Writes under ${OUT:-/tmp/gpu_check}: logs and benchmarks' throughput JSON for GPU fp32
# and GPU bf16-mixed. Untested so far: no session has had the GPU machine yet.
set -euxo pipefail
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
python3 -m venv /tmp/gpu-venv
/tmp/gpu-venv/bin/pip install -q torch==2.13.0
/tmp/gpu-venv/bin/pip install -q -e ".[test]"
py=/tmp/gpu-venv/bin/python
$py -c "import torch; print(torch.__version__, torch.cuda.is_available(), torch.cuda.get_device_name(0))" | tee "$out/device.txt"
tiny=(--data.total_frames=8192 --eval.eval_every_frames=4096 --eval.episodes=1 --data.val_episodes=1 --trainer.logger=false)
$py train.py fit --config configs/hopper.yaml "${tiny[@]}" --trainer.accelerator=gpu --trainer.default_root_dir="$out/fp32" 2>&1 | tail -20 > "$out/fit_fp32.log"
$py train.py fit --config configs/hopper.yaml "${tiny[@]}" --trainer.accelerator=gpu --trainer.precision=bf16-mixed --trainer.default_root_dir="$out/bf16" 2>&1 | tail -20 > "$out/fit_bf16.log"
$py benchmarks/throughput.py --config configs/hopper.yaml --frames 50000 --out "$out" --tag gpu-fp32 -- --trainer.accelerator=gpu
$py benchmarks/throughput.py --config configs/hopper.yaml --frames 50000 --out "$out" --tag gpu-bf16 -- --trainer.accelerator=gpu --trainer.precision=bf16-mixed
