#!/usr/bin/env bash
# Hopper with 15 rollout worker processes beside a learner on the GPU (issue 16), for the
# device machine (16 cores, one H200): frames/s of the GAIL loop in fp32 and bf16-mixed with
# the default and a larger minibatch, then one seed's time to a normalized score of 0.9.
#   bash benchmarks/gpu_check.sh --fetch-wheels   # here, once (carry .whl)
#   bash benchmarks/gpu_scale.sh                  # there, through the device tool
# Writes under ${OUT:-/tmp/gpu_scale}: throughput JSON per variant and the learn.py result.
set -euo pipefail
out=${OUT:-/tmp/gpu_scale}
frames=${FRAMES:-200000}
mkdir -p "$out"
bash benchmarks/gpu_check.sh --install
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nproc | tee "$out/cores.txt"

# 15 workers x 8 envs; a batch of 3840 frames (32 steps per env) splits evenly over them.
workers=(--data.num_workers=15 --data.num_envs=8 --data.frames_per_batch=3840)
python3 benchmarks/throughput.py --config configs/hopper.yaml --frames "$frames" --out "$out" --rounds 1 \
  --parts b --tag h200-15workers -- "${workers[@]}"
for precision in 32-true bf16-mixed; do
  for minibatch in 256 1280; do
    python3 benchmarks/throughput.py --config configs/hopper.yaml --frames "$frames" --out "$out" --rounds 1 \
      --parts c --tag "h200-15workers-gpu-$precision-mb$minibatch" -- "${workers[@]}" \
      --trainer.accelerator=gpu --trainer.precision=$precision --model.ppo.minibatch_size=$minibatch
  done
done
python3 benchmarks/learn.py --config configs/hopper.yaml --seeds 1 --out "$out/learn" -- \
  "${workers[@]}" --trainer.accelerator=gpu --data.total_frames=400000
