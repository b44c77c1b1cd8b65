#!/usr/bin/env bash
# SAC on the device machine (one H200, 16 cores), for issue 18's choice of how to train the
# Ant and Humanoid experts: the update alone (benchmarks/sac_update.py on the GPU, Humanoid's
# joint-only sizes, batch 256 and 1024), then SACModule's whole loop with the GPU learner
# (collection on the CPU) on Humanoid-v5 for a short run, timed.
#   bash benchmarks/gpu_check.sh --fetch-wheels   # here, once (carry .whl)
#   bash benchmarks/gpu_sac.sh                    # there, through the device tool
# Writes under ${OUT:-/tmp/gpu_sac}: sac_update JSON per batch size and the loop's log and wall time.
set -euo pipefail
out=${OUT:-/tmp/gpu_sac}
mkdir -p "$out"
bash benchmarks/gpu_check.sh --install
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi -L | tee "$out/gpu.txt"
for batch in 256 1024; do
  python3 benchmarks/sac_update.py --device cuda --threads 1 --variants lean lean_two_mlps \
    --obs-dim 45 --action-dim 17 --batch-size "$batch" --repeats 5 --no-buffer-costs \
    --name "h200-humanoid-b$batch" --out "$out"
done
# Batches of 256 frames; updates start with the batch that brings the buffer to 4,096, so the
# last 33 batches take 8,448 updates. The run evaluates once, after its last batch (3 episodes).
rm -rf /tmp/sac_loop
start=$SECONDS
python3 train.py fit --config configs/experts/humanoid.yaml --trainer.accelerator=gpu \
  --data.total_frames=12288 --model.learning_starts=4096 --eval.eval_every_frames=1000000 \
  --trainer.default_root_dir=/tmp/sac_loop --trainer.logger=false --trainer.enable_progress_bar=false \
  >"$out/sac_loop.log" 2>&1 || { tail -n 30 "$out/sac_loop.log"; exit 1; }
echo "sac loop: 12288 frames (8448 updates, one 3-episode evaluation) in $((SECONDS - start)) s, start-up included" \
  | tee "$out/h200-humanoid-loop.txt"
