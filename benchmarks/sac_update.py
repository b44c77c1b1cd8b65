"""Milliseconds per SAC update (minibatch draw, losses, backward, the three Adam steps, target
soft update): TorchRL's ``SACLoss`` as ``SACModule`` used it until 2026-12, against plain-torch
variants of the same maths, at 1 and 2 torch threads, on the CPU or (``--device cuda``, the
lean variants) a GPU.

    python benchmarks/sac_update.py --name my_machine

Variants:
    torchrl            SACLoss (vmap over stacked Q params), plain Adam, SoftUpdate,
                       ReplayBuffer.sample from a LazyTensorStorage
    lean               SACModule's update: TwinQ (batched matmul), fused Adam, foreach lerp,
                       the memory-mapped buffer indexed directly
    lean_foreach_adam  lean with foreach instead of fused Adam
    lean_two_mlps      lean with the twin Q as two plain MLPs, one matmul chain each
    lean_compiled      lean with the losses under torch.compile (not run unless named in
                       --variants; ~1 min to compile)

HalfCheetah sizes by default (17 observations, 6 actions), 2x256 ReLU networks, batch 256,
a buffer of 100,000 random transitions. Variants alternate over ``--repeats`` rounds of
``--updates`` updates after a warm-up; each reports the median and the fastest round. Also
times the disk buffer's checkpoint save and adds (``buffer_costs``). Writes
benchmarks/results/sac_update/<name>.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tensordict import TensorDict
from torch import nn
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.objectives import SACLoss, SoftUpdate

from gail_lightning.networks import RunningNorm, make_actor, make_qvalue
from gail_lightning.provenance import package_versions
from gail_lightning.sac import DiskReplayBuffer, SACModule

BUFFER = 100_000
VARIANTS = ("torchrl", "lean", "lean_foreach_adam", "lean_two_mlps", "lean_compiled")


def transitions(obs: int, act: int, n: int) -> TensorDict:
    """``n`` random transitions in the buffer's format."""
    return TensorDict({
        "observation": torch.randn(n, obs), "action": torch.rand(n, act) * 2 - 1,
        "next": {"observation": torch.randn(n, obs), "reward": torch.randn(n, 1),
                 "done": torch.rand(n, 1) < 0.01, "terminated": torch.rand(n, 1) < 0.01},
    }, [n])


def step_optimizers(loss: torch.Tensor, opts: list[torch.optim.Optimizer]) -> None:
    """What ``OnlineModule.update`` does around the backward, less Lightning's wrappers: its
    finiteness checks read the loss and each gradient norm (on a GPU, each waits for it)."""
    if not torch.isfinite(loss):
        raise FloatingPointError("non-finite SAC loss")
    for opt in opts:
        opt.zero_grad()
    loss.backward()
    for opt in opts:
        params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        if not torch.isfinite(torch.nn.utils.get_total_norm([p.grad for p in params])):
            raise FloatingPointError("non-finite SAC gradient")
        opt.step()


def torchrl_variant(
    obs: int, act: int, hidden: tuple[int, ...], batch: int, data: TensorDict
) -> Callable[[], None]:
    actor = make_actor(RunningNorm(obs), obs, [-1.0] * act, [1.0] * act, hidden,
                       state_dependent_scale=True, activation=nn.ReLU)
    loss = SACLoss(actor, make_qvalue(obs, act, hidden), num_qvalue_nets=2, loss_function="l2")
    loss.make_value_estimator(gamma=0.99)
    target = SoftUpdate(loss, tau=0.005)
    buffer = ReplayBuffer(storage=LazyTensorStorage(BUFFER), batch_size=batch)
    buffer.extend(data)
    opts = [torch.optim.Adam(actor.parameters(), lr=3e-4),
            torch.optim.Adam(loss.qvalue_network_params.values(True, True), lr=3e-4),
            torch.optim.Adam([loss.log_alpha], lr=3e-4)]

    def update() -> None:
        losses = loss(buffer.sample())
        step_optimizers(losses["loss_actor"] + losses["loss_qvalue"] + losses["loss_alpha"], opts)
        target.step()

    return update


class TwoMLPs(nn.Module):
    """The twin Q as two plain MLPs (``TwinQ``'s interface), one matmul chain each."""

    def __init__(self, obs: int, act: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(make_qvalue(obs, act, hidden).module for _ in range(2))

    def forward(self, observation: torch.Tensor, action: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        values = []
        for net in self.nets:
            x = torch.cat([observation, action], -1)
            for layer in net:
                if isinstance(layer, nn.Linear) and frozen:
                    x = nn.functional.linear(x, layer.weight.detach(), layer.bias.detach())
                else:
                    x = layer(x)
            values.append(x)
        return torch.stack(values).squeeze(-1)


def lean_variant(
    name: str, obs: int, act: int, hidden: tuple[int, ...], batch: int, data: TensorDict, folder: Path,
    device: torch.device,
) -> Callable[[], None]:
    module = SACModule(obs, [-1.0] * act, [1.0] * act, hidden_sizes=hidden, batch_size=batch,
                       buffer_size=BUFFER)
    if name == "lean_two_mlps":
        module.qvalue = TwoMLPs(obs, act, hidden)
        module.target_qvalue = copy.deepcopy(module.qvalue).requires_grad_(False)
    module.to(device)  # the buffer stays in host memory, as in SACModule
    module.buffer = DiskReplayBuffer(folder / name, BUFFER, run=name)
    module.buffer.extend(data.clone())
    opts = module.configure_optimizers()
    if name == "lean_foreach_adam":
        opts = [torch.optim.Adam(opt.param_groups[0]["params"], lr=3e-4, foreach=True) for opt in opts]
    losses_of = torch.compile(module.losses) if name == "lean_compiled" else module.losses

    def update() -> None:
        losses = losses_of(module.buffer.sample(batch).to(device))
        step_optimizers(losses["loss_actor"] + losses["loss_qvalue"] + losses["loss_alpha"], opts)
        module.update_targets()

    return update


def buffer_costs(folder: Path, repeats: int) -> dict[str, float]:
    """Median milliseconds, at one thread, of ``DiskReplayBuffer``'s checkpoint save (metadata
    only) for a million-transition storage of Humanoid-v5 sizes (348 observations, 17
    actions), and of adding a 256-transition batch to it and to a full ring (where each add
    also copies the transitions it overwrites to ``undo/``), once their pages are in memory."""
    def median_ms(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return statistics.median(times)

    torch.set_num_threads(1)
    batch = transitions(348, 17, 256)
    big = DiskReplayBuffer(folder / "big", 1_000_000, run="big")
    ring = DiskReplayBuffer(folder / "ring", 4096, run="ring")
    for _ in range(3 * 4096 // 256):  # three passes over the ring, a save after each
        big.extend(batch)
        ring.extend(batch)
        if ring.buffer.write_count % 4096 == 0:
            ring.save()
    return {"save_ms": median_ms(big.save), "extend_ms": median_ms(lambda: big.extend(batch)),
            "extend_full_ring_ms": median_ms(lambda: ring.extend(batch))}


def machine() -> dict:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")
    return {"cpu": model, "cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg(),
            "torch_default_threads": torch.get_num_threads(), "versions": package_versions()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="latest", help="result file name (without .json)")
    parser.add_argument("--obs-dim", type=int, default=17)
    parser.add_argument("--action-dim", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--updates", type=int, default=50, help="updates per timed round")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per variant and thread count")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS,
                        help="default: all but lean_compiled (on a GPU, the lean ones)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                        help="where the lean variants update (the torchrl one runs on the CPU only)")
    parser.add_argument("--buffer-costs", action=argparse.BooleanOptionalAction, default=True,
                        help="also time the disk buffer's save and adds (CPU, ~10 s)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sac_update"))
    args = parser.parse_args()
    args.device = torch.device(args.device)
    on_gpu = args.device.type == "cuda"
    if args.variants is None:
        args.variants = [v for v in VARIANTS[:-1] if not (on_gpu and v == "torchrl")]
    if on_gpu and "torchrl" in args.variants:
        parser.error("the torchrl variant runs on the CPU only: leave it out of --variants with --device cuda")
    info = machine()
    hidden = (256, 256)
    torch.manual_seed(0)
    data = transitions(args.obs_dim, args.action_dim, BUFFER)
    names = args.variants
    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for threads in args.threads:
            torch.set_num_threads(threads)
            updates = {}
            for name in names:
                sizes = (args.obs_dim, args.action_dim, hidden, args.batch_size, data)
                updates[name] = (torchrl_variant(*sizes) if name == "torchrl"
                                 else lean_variant(name, *sizes, Path(folder) / str(threads), args.device))
                for _ in range(10):  # warm-up (and compilation)
                    updates[name]()
                if on_gpu:
                    torch.cuda.synchronize()
            rounds: dict[str, list[float]] = {name: [] for name in names}
            for _ in range(args.repeats):
                for name, update in updates.items():
                    start = time.perf_counter()
                    for _ in range(args.updates):
                        update()
                    if on_gpu:
                        torch.cuda.synchronize()  # the round ends when its kernels have run
                    rounds[name].append((time.perf_counter() - start) / args.updates * 1e3)
            results[f"{threads}_threads"] = {
                name: {"median_ms": statistics.median(ms), "min_ms": min(ms), "rounds_ms": ms}
                for name, ms in rounds.items()
            }
            for name, ms in rounds.items():
                print(f"{threads} thread(s)  {name:18s} median {statistics.median(ms):6.2f} ms  "
                      f"fastest {min(ms):6.2f} ms per update")
        buffer = buffer_costs(Path(folder) / "buffer", args.repeats) if args.buffer_costs else {}
    if buffer:
        print("disk buffer (Humanoid sizes): " + ", ".join(f"{k} {v:.2f}" for k, v in buffer.items()))
    fastest = min(((t, n) for t, r in results.items() for n in r),
                  key=lambda tn: results[tn[0]][tn[1]]["median_ms"])
    report = {
        "ms_per_update": results, "fastest": {"threads": fastest[0], "variant": fastest[1]},
        "disk_buffer_ms": buffer,
        "device": str(args.device) + (f" ({torch.cuda.get_device_name(args.device)})"
                                      if on_gpu else ""),
        "sizes": {"obs_dim": args.obs_dim, "action_dim": args.action_dim, "hidden": hidden,
                  "batch_size": args.batch_size, "buffer": BUFFER},
        "updates_per_round": args.updates, "repeats": args.repeats,
        "machine": {**info, "load_average_at_end": os.getloadavg()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"fastest: {fastest[1]} at {fastest[0].replace('_', ' ')}; wrote {args.out / args.name}.json")


if __name__ == "__main__":
    main()
