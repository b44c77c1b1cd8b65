#!/usr/bin/env bash
# Humanoid GAIL design probe for the device machine's 16 cores (issue 18): can GAIL's policy
# keep what a BC warm start gives it? Eight runs side by side, each a learner on one core and
# its rollout worker on another (CPU only, as here), for WALL seconds, then SIGTERM (each
# saves last.ckpt). Demos from a candidate expert: DEMOS (default probe/humanoid.npz).
#   bash benchmarks/gpu_check.sh --fetch-wheels   # here, once (carry .whl)
#   bash benchmarks/gpu_humanoid_probe.sh         # there, through the device tool
# Writes ${OUT:-/tmp/humanoid_probe}/<variant>/eval_history.json and the log's tail.
set -uo pipefail
out=${OUT:-/tmp/humanoid_probe}
wall=${WALL:-420}
demos=${DEMOS:-probe/humanoid.npz}
mkdir -p "$out"
[[ -n ${SKIP_INSTALL:-} ]] || bash benchmarks/gpu_check.sh --install || exit 1  # SKIP_INSTALL=1: try it here
nproc | tee "$out/cores.txt"
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1

common=(--data.demos="$demos" --trainer.accelerator=cpu --trainer.logger=false
  --trainer.enable_progress_bar=false)
warm=(--model.bc.steps=10000 --eval.eval_every_frames=25000)
declare -A variants=(
  [gail_s0]="configs/humanoid.yaml --data.seed=0 --eval.eval_every_frames=25000"
  [gail_s1]="configs/humanoid.yaml --data.seed=1 --eval.eval_every_frames=25000"
  [gail_bc_s0]="configs/humanoid.yaml --data.seed=0 ${warm[*]}"
  [gail_bc_s1]="configs/humanoid.yaml --data.seed=1 ${warm[*]}"
  [control_s0]="configs/humanoid.yaml --data.seed=0 --model.disc.steps=0 --eval.eval_every_frames=25000"
  [control_bc_s0]="configs/humanoid.yaml --data.seed=0 --model.disc.steps=0 ${warm[*]}"
  [trpo_bc_s0]="configs/humanoid_trpo.yaml --data.seed=0 ${warm[*]}"
  [bc_s0]="configs/bc/humanoid.yaml --data.seed=0"
)
pids=()
for name in "${!variants[@]}"; do
  read -r config args <<<"${variants[$name]}"
  mkdir -p "$out/$name"
  # shellcheck disable=SC2086
  python3 train.py fit --config "$config" "${common[@]}" $args \
    --trainer.default_root_dir="/tmp/probe/$name" >"/tmp/probe_$name.log" 2>&1 &
  pids+=($!)
done
sleep "$wall"
kill -TERM "${pids[@]}" 2>/dev/null
# A run saves within a batch of SIGTERM; one still stuck a minute later is killed.
(sleep 60; kill -KILL "${pids[@]}") >/dev/null 2>&1 &
killer=$!
wait "${pids[@]}"
kill "$killer" 2>/dev/null
for name in "${!variants[@]}"; do
  cp "/tmp/probe/$name/eval_history.json" "$out/$name/" 2>/dev/null
  tail -n 30 "/tmp/probe_$name.log" >"$out/$name/log_tail.txt"
  python3 -c "import json,sys; h=json.load(open(sys.argv[1])); print(sys.argv[2], [(x['frames']//1000, round(x['eval/return']), round(x['eval/normalized_score'], 2)) for x in h])" \
    "$out/$name/eval_history.json" "$name" 2>/dev/null || echo "$name: no evaluations"
done | tee "$out/summary.txt"
