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

RewardKind = Literal["survival", "logit", "airl"]


class Discriminator(nn.Module):
    """Binary classifier of expert vs policy state-action pairs (tanh MLP on [norm(s), a]).

    With ``absorbing`` it also scores the absorbing state an episode enters when it
    terminates (DAC, Kostrikov et al. 2019): the network reads one more input, the absorbing
    flag, and the absorbing pair's observation and action read as zeros. D then learns
    whether ending an episode is expert-like, instead of the reward deciding it by its sign.

    With ``shaping_gamma`` (AIRL, Fu et al. 2018) ``net`` is AIRL's g(s, a) and a second
    network h(s) (``potential``) adds the shaping term γ·h(s') − h(s) (``shaping``):
    D = exp f / (exp f + π(a|s)) with f = g + γ·h(s') − h(s), so its logit is f − log π.
    """

    def __init__(
        self, obs_norm: RunningNorm, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int],
        absorbing: bool = False, shaping_gamma: float | None = None,
    ) -> None:
        super().__init__()
        self.obs_norm = obs_norm
        self.obs_dim, self.action_dim, self.absorbing = obs_dim, action_dim, absorbing
        self.net = mlp(obs_dim + action_dim + int(absorbing), 1, hidden_sizes)
        self.shaping_gamma = shaping_gamma
        self.potential = None if shaping_gamma is None else mlp(obs_dim + int(absorbing), 1, hidden_sizes)

    def forward(
        self, observation: torch.Tensor, action: torch.Tensor, absorbing: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logit of D(s, a), shape ``[..., 1]``."""
        return self.net(self.inputs(observation, action, absorbing))

    def inputs(
        self, observation: torch.Tensor, action: torch.Tensor, absorbing: torch.Tensor | None = None
    ) -> torch.Tensor:
        """What the network reads: the normalized observation and the action, and with
        absorbing states the flag ``absorbing`` ``[..., 1]`` (0, the default: a live state;
        1: the absorbing state)."""
        return self._flagged([self.obs_norm(observation), action], absorbing)

    def potential_of(self, observation: torch.Tensor, absorbing: torch.Tensor | None = None) -> torch.Tensor:
        """AIRL's h(s), shape ``[..., 1]``; ``absorbing`` flags the absorbing state as in ``inputs``."""
        return self.potential(self._flagged([self.obs_norm(observation)], absorbing))

    def _flagged(self, parts: list[torch.Tensor], absorbing: torch.Tensor | None) -> torch.Tensor:
        """``parts`` side by side; with absorbing states zeroed where flagged, and the flag after."""
        if not self.absorbing:
            return torch.cat(parts, dim=-1)
        if absorbing is None:
            absorbing = parts[0].new_zeros(*parts[0].shape[:-1], 1)
        live = 1 - absorbing
        return torch.cat([*(part * live for part in parts), absorbing], dim=-1)

    def shaping(
        self, observation: torch.Tensor, next_observation: torch.Tensor, terminated: torch.Tensor,
        absorbing: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """AIRL's γ·h(s') − h(s) ``[..., 1]``. After a termination s' is the absorbing state
        (with absorbing states), otherwise h(s') = 0; an absorbing pair (flag 1) goes from
        the absorbing state to itself."""
        terminated = terminated.to(observation.dtype)
        if self.absorbing:
            next_flag = terminated if absorbing is None else torch.maximum(terminated, absorbing)
            following = self.potential_of(next_observation, next_flag)
        else:
            following = self.potential_of(next_observation) * (1 - terminated)
        return self.shaping_gamma * following - self.potential_of(observation, absorbing)

    def absorbing_logit(self) -> torch.Tensor:
        """Logit of D at the absorbing state, shape ``[1]``: with AIRL's shaping, g + (γ − 1)·h
        there, and log π = 0 (the absorbing state has one action)."""
        device = self.obs_norm.mean.device
        obs, flag = torch.zeros(1, self.obs_dim, device=device), torch.ones(1, 1, device=device)
        logit = self(obs, torch.zeros(1, self.action_dim, device=device), flag)
        if self.potential is not None:
            logit = logit + self.shaping(obs, obs, flag, flag)
        return logit[0]


def discriminator_loss(expert_logits: torch.Tensor, policy_logits: torch.Tensor) -> torch.Tensor:
    """BCE with expert pairs labelled 1 and policy pairs labelled 0."""
    return F.binary_cross_entropy_with_logits(
        expert_logits, torch.ones_like(expert_logits)
    ) + F.binary_cross_entropy_with_logits(policy_logits, torch.zeros_like(policy_logits))


def gradient_penalty(discriminator: Discriminator, expert: torch.Tensor, policy: torch.Tensor) -> torch.Tensor:
    """WGAN-GP style penalty (‖∇D‖ − 1)² on random interpolates of expert and policy
    inputs (``Discriminator.inputs``), of the network ``net`` (with AIRL: of g, not h).

    The gradient is taken with respect to what the network reads, the normalized
    observations, not the raw ones: raw, a dimension with a small spread (a height, an
    angle) has its gradient scaled up by 1/std, so the penalty would flatten D along exactly
    those dimensions (at init ‖∇D‖ is 12.5 with respect to raw Hopper observations, 0.77 to
    normalized ones), and the penalty would drift as the statistics update.
    """
    alpha = torch.rand(expert.shape[0], 1, device=expert.device)
    inputs = (alpha * expert + (1 - alpha) * policy).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator.net(inputs).sum(), inputs, create_graph=True)
    return (grad.norm(2, dim=-1) - 1).pow(2).mean()


def absorbing_flags(count: int, rate: float, device: torch.device) -> torch.Tensor:
    """Absorbing flags ``[count, 1]`` for pairs drawn from data where a share ``rate`` of
    the pairs is the absorbing pair: each flag is 1 with probability ``rate``."""
    return (torch.rand(count, 1, device=device) < rate).float()


def learned_reward(logits: torch.Tensor, kind: RewardKind) -> torch.Tensor:
    """Policy reward from D's logit.

    ``survival``: −log(1 − D) = softplus(logit), always positive, which rewards staying
    alive and so suits tasks that end early (Hopper, Walker2d). ``logit``:
    log D − log(1 − D) = logit, unbiased in sign, for tasks without early termination.
    ``airl``: the same, log D − log(1 − D), of AIRL's D: f − log π(a|s).
    """
    if kind == "survival":
        return F.softplus(logits)
    if kind in ("logit", "airl"):
        return logits
    raise ValueError(f"learned_reward got kind={kind!r}; use 'survival', 'logit' or 'airl'.")
