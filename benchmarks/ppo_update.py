"""Milliseconds per PPO minibatch step (loss, backward, clipped Adam steps of actor and
critic) on one core: ours (`gail_lightning/ppo.py`, fused Adam) against TorchRL's
`ClipPPOLoss`, as the module used it before (non-functional, plain Adam) and in the
functional mode its decoupled proximal policy needs (`delay_actor=True`).

    python benchmarks/ppo_update.py --out benchmarks/results/ppo_update

Hopper sizes: 11 observations, 3 actions, 2x100 tanh networks, minibatch 256. The three
variants alternate over `--rounds` rounds of one 2,048-frame epoch (8 minibatches); each
one's fastest round counts. Writes <out>/ppo_update.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tensordict import TensorDict
from torchrl.objectives import ClipPPOLoss

from gail_lightning.networks import ActionSampler, RunningNorm, make_actor, make_critic
from gail_lightning.ppo import PPOLoss
from gail_lightning.provenance import package_versions

OBS, ACT, FRAMES, MINIBATCH = 11, 3, 2048, 256


def variant(name: str):
    """A minibatch step function of the named variant, over networks of its own."""
    norm = RunningNorm(OBS)
    actor = make_actor(norm, OBS, [-1.0] * ACT, [1.0] * ACT, (100, 100))
    critic = make_critic(norm, OBS, (100, 100))
    settings = dict(clip_epsilon=0.2, entropy_coeff=0.01, critic_coeff=0.5)
    if name == "ours":
        loss = PPOLoss(actor, critic, **settings)
    else:
        loss = ClipPPOLoss(actor, critic, **settings, loss_critic_type="l2", normalize_advantage=True,
                           log_explained_variance=False, functional=name == "torchrl_delay_actor",
                           delay_actor=name == "torchrl_delay_actor")
    fused = name == "ours"
    opts = [torch.optim.Adam(net.parameters(), lr=3e-4, eps=1e-5, fused=fused) for net in (actor, critic)]

    def step(minibatch: TensorDict) -> None:
        out = loss(minibatch)
        total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
        for opt in opts:
            opt.zero_grad()
        total.backward()
        for opt in opts:
            params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grads_with_norm_(params, 0.5, torch.nn.utils.get_total_norm([p.grad for p in params]))
            opt.step()

    return actor, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ppo_update"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    variants = {name: variant(name) for name in ("ours", "torchrl_non_functional", "torchrl_delay_actor")}
    batch = TensorDict({"observation": torch.randn(FRAMES, OBS)}, [FRAMES])
    with torch.no_grad():
        ActionSampler(next(iter(variants.values()))[0])(batch)
    batch["proximal_log_prob"] = batch["action_log_prob"]
    batch["advantage"] = torch.randn(FRAMES, 1)
    batch["value_target"] = torch.randn(FRAMES, 1)
    best = {name: float("inf") for name in variants}
    for _ in range(args.rounds):
        for name, (_, step) in variants.items():
            start = time.perf_counter()
            for idx in torch.randperm(FRAMES).split(MINIBATCH):
                step(batch[idx])
            best[name] = min(best[name], (time.perf_counter() - start) / (FRAMES // MINIBATCH) * 1e3)
    report = {"ms_per_minibatch_step": best, "minibatch": MINIBATCH, "rounds": args.rounds,
              "threads": 1, "versions": package_versions()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ppo_update.json").write_text(json.dumps(report, indent=1))
    for name, ms in best.items():
        print(f"{name:24s} {ms:6.2f} ms per minibatch step")


if __name__ == "__main__":
    main()
