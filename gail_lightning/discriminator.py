"""Discriminator D(s, a), its loss, and the reward it gives the policy.

D outputs a logit; D(s, a) = sigmoid(logit) is the probability that (s, a) came from the
expert. The loss is binary cross-entropy on logits: torchrl's ``GAILLoss`` applies BCE to
probabilities, which saturates in low precision, so the loss is written here on logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from gail_lightning.networks import RunningNorm, mlp

RewardKind = Literal["survival", "logit", "env"]


class Discriminator(nn.Module):
    """Binary classifier of expert vs policy state-action pairs (tanh MLP on [norm(s), a])."""

    def __init__(
        self, obs_norm: RunningNorm, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int]
    ) -> None:
        super().__init__()
        self.obs_norm = obs_norm
        self.net = mlp(obs_dim + action_dim, 1, hidden_sizes)

    def forward(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Logit of D(s, a), shape ``[..., 1]``."""
        return self.on_normalized(self.obs_norm(observation), action)

    def on_normalized(self, observation: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Logit of D for observations already normalized by ``obs_norm``."""
        return self.net(torch.cat([observation, action], dim=-1))


def discriminator_loss(expert_logits: torch.Tensor, policy_logits: torch.Tensor) -> torch.Tensor:
    """BCE with expert pairs labelled 1 and policy pairs labelled 0."""
    return F.binary_cross_entropy_with_logits(
        expert_logits, torch.ones_like(expert_logits)
    ) + F.binary_cross_entropy_with_logits(policy_logits, torch.zeros_like(policy_logits))


def gradient_penalty(
    discriminator: Discriminator,
    expert: tuple[torch.Tensor, torch.Tensor],
    policy: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """WGAN-GP style penalty (‖∇D‖ − 1)² on random interpolates of expert and policy pairs.

    The gradient is taken with respect to the normalized observations D sees, not the raw
    ones: raw, a dimension with a small spread (a height, an angle) has its gradient scaled
    up by 1/std, so the penalty would flatten D along exactly those dimensions (at init
    ‖∇D‖ is 12.5 with respect to raw Hopper observations, 0.77 to normalized ones), and
    the penalty would drift as the statistics update.
    """
    alpha = torch.rand(expert[0].shape[0], 1, device=expert[0].device)
    normalize = discriminator.obs_norm
    obs = (alpha * normalize(expert[0]) + (1 - alpha) * normalize(policy[0])).detach().requires_grad_(True)
    act = (alpha * expert[1] + (1 - alpha) * policy[1]).requires_grad_(True)
    logits = discriminator.on_normalized(obs, act)
    grads = torch.autograd.grad(logits.sum(), (obs, act), create_graph=True)
    norm = torch.cat(grads, dim=-1).norm(2, dim=-1)
    return (norm - 1).pow(2).mean()


def learned_reward(logits: torch.Tensor, kind: RewardKind) -> torch.Tensor:
    """Policy reward from D's logit.

    ``survival``: −log(1 − D) = softplus(logit), always positive, which rewards staying
    alive and so suits tasks that end early (Hopper, Walker2d). ``logit``:
    log D − log(1 − D) = logit, unbiased in sign, for tasks without early termination.
    """
    if kind == "survival":
        return F.softplus(logits)
    if kind == "logit":
        return logits
    raise ValueError(f"learned_reward got kind={kind!r}; use 'survival' or 'logit'.")
