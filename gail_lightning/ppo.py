"""The clipped PPO loss, with its trust region around a proximal policy.

Each action in a batch has three log-probabilities: under the behaviour policy that
collected it (``action_log_prob``), under the policy at the start of this update
(``proximal_log_prob``), and under the policy being trained. The clip acts on
π/π_proximal and the surrogate is weighted by π_proximal/π_behaviour (decoupled PPO,
Hilton et al. 2021, "Batch size-invariance for policy optimization"). On-policy the weight
is 1 and this is PPO; on a batch collected one update late (``data.overlap``) each update
still moves the policy at most ``clip_epsilon`` from where it starts, where a clip around
the older collecting policy pulls it back towards that policy.

Written over the networks in plain torch: TorchRL's ``ClipPPOLoss`` offers this
decoupling only in its functional mode (``delay_actor=True``). Per 256-frame Hopper
minibatch step (loss, backward, clipped Adam steps) on one core, ``benchmarks/ppo_update.py``:
4.1 ms for that mode, 3.2 ms for ``ClipPPOLoss`` without it, 2.1 ms for this loss with
fused Adam.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDictBase
from torch import nn
from torchrl.modules import ProbabilisticActor, ValueOperator

from gail_lightning.networks import SquashedGaussian

# Cap on the weight π_proximal/π_behaviour, so that a rare action the collecting policy
# drew with tiny probability cannot dominate a minibatch. (The PPO-EWMA reference code and
# TorchRL's ``max_importance_ratio`` cap π/π_behaviour instead, at the same 100; with one
# update of lag they stay far below it: at most 5.7 over the Hopper benchmark's 5 seeds.)
MAX_IMPORTANCE_WEIGHT = 100.0


class PPOLoss(nn.Module):
    """Clipped surrogate, entropy bonus (one-sample estimate: a squashed Gaussian has no
    closed-form entropy) and squared-error value loss of a minibatch, advantages
    standardized within it. The networks are the actor's and critic's own, so this
    module adds nothing to a checkpoint."""

    # what ``forward`` reads of a minibatch
    in_keys = ("observation", "action", "advantage", "proximal_log_prob", "action_log_prob", "value_target")

    def __init__(
        self,
        actor: ProbabilisticActor,
        critic: ValueOperator,
        clip_epsilon: float,
        entropy_coeff: float,
        critic_coeff: float,
    ) -> None:
        super().__init__()
        self.policy = SquashedGaussian(actor)
        self._value = (critic.module,)  # a tuple keeps the critic unregistered here
        self.log_clip = (math.log1p(-clip_epsilon), math.log1p(clip_epsilon))
        self.entropy_coeff = entropy_coeff
        self.critic_coeff = critic_coeff

    def forward(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        observation, action = batch["observation"], batch["action"]
        advantage = batch["advantage"].squeeze(-1)
        advantage = (advantage - advantage.mean()) / advantage.std().clamp_min(1e-6)
        proximal = batch["proximal_log_prob"]
        weight = (proximal - batch["action_log_prob"]).exp().clamp(max=MAX_IMPORTANCE_WEIGHT)

        loc, scale = self.policy(observation)
        log_ratio = self.policy.log_prob(action, loc, scale) - proximal
        gain = torch.minimum(log_ratio.exp() * advantage, log_ratio.clamp(*self.log_clip).exp() * advantage)
        entropy = -self.policy.log_prob(self.policy.sample(loc, scale), loc, scale)
        value = self._value[0](observation)
        return {
            "loss_objective": -(weight * gain).mean(),
            "loss_entropy": -self.entropy_coeff * entropy.mean(),
            "loss_critic": self.critic_coeff * (value - batch["value_target"]).pow(2).mean(),
            "entropy": entropy.detach().mean(),
            "kl_approx": -log_ratio.detach().mean(),
            "clip_fraction": ((log_ratio < self.log_clip[0]) | (log_ratio > self.log_clip[1])).float().mean(),
        }
