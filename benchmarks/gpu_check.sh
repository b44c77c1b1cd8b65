#!/usr/bin/env bash
# GPU checks for a session lent the device machine (see the `device` tool). That machine has
# PyTorch, Lightning and torchmetrics but no package registry, so the rest travels as wheels:
#   bash benchmarks/gpu_check.sh --fetch-wheels   # here: download them into .whl/ (git-ignored)
#   bash benchmarks/gpu_check.sh                  # there, through the tool (carry .whl, ~35 MB)
#   bash benchmarks/gpu_check.sh --install        # there: only install them (gpu_scale.sh does)
# Writes under ${OUT:-/tmp/gpu_check}: versions, tiny fp32 and bf16-mixed fits of Hopper, and
# benchmarks/throughput.py JSON for CPU, GPU fp32 and GPU bf16-mixed updates.
set -euo pipefail
out=${OUT:-/tmp/gpu_check}
frames=${FRAMES:-50000}
wheels=(torchrl==0.14.1 tensordict==0.14.3 gymnasium==1.4.0 mujoco==4.0.0 mujoco-core==4.0.0
  mujoco-studio==4.0.0 glfw==2.11.0 PyOpenGL==3.1.10 Farama-Notifications==0.0.6
  jsonargparse==4.53.0 docstring_parser==0.18.0 typeshed_client==2.15.0 pyvers==0.2.3
  orjson==3.13.0 hoptorch==0.1.4 lazy-importer==0.1.0 importlib_metadata==10.2.0
  websockets==17.4)

if [[ ${1:-} == --fetch-wheels ]]; then
  platforms=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64)
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]/#/--platform=}" -d .whl "${wheels[@]}"
  exit
fi

mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl
[[ ${1:-} == --install ]] && exit
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
py=python3
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  $py -c "import torch, torchrl, tensordict, lightning, gymnasium, mujoco
print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))
print('torchrl', torchrl.__version__, 'tensordict', tensordict.__version__, 'lightning', lightning.__version__)
print('gymnasium', gymnasium.__version__, 'mujoco', mujoco.__version__)"
} 2>&1 | tee "$out/device.txt"

tiny=(--data.total_frames=8192 --eval.eval_every_frames=4096 --eval.episodes=1 --data.val_episodes=1
  --trainer.logger=false --trainer.accelerator=gpu)
for precision in 32-true bf16-mixed; do
  $py train.py fit --config configs/hopper.yaml "${tiny[@]}" --trainer.precision=$precision \
    --trainer.default_root_dir="/tmp/fit-$precision" >"$out/fit-$precision.log" 2>&1 \
    || { tail -n 40 "$out/fit-$precision.log"; exit 1; }
  tail -n 5 "$out/fit-$precision.log"
done

# The default config, then 32 envs with minibatch 512, where larger batches might favour the GPU.
# accelerator=cpu is explicit: Lightning's "auto" would take the GPU.
$py benchmarks/throughput.py --config configs/hopper.yaml --frames "$frames" --out "$out" \
  --tag h200-cpu -- --trainer.accelerator=cpu
big=(--data.num_envs=32 --model.ppo.minibatch_size=512)
$py benchmarks/throughput.py --config configs/hopper.yaml --frames "$frames" --out "$out" \
  --parts c --tag h200-cpu-32envs-mb512 -- --trainer.accelerator=cpu "${big[@]}"
for precision in 32-true bf16-mixed; do
  for variant in default 32envs-mb512; do
    extra=(); [[ $variant == default ]] || extra=("${big[@]}")
    $py benchmarks/throughput.py --config configs/hopper.yaml --frames "$frames" --out "$out" \
      --parts c --tag "h200-gpu-$precision-$variant" -- --trainer.accelerator=gpu \
      --trainer.precision=$precision "${extra[@]}"
  done
done
