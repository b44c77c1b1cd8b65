"""Soft actor-critic on the true env reward: the off-policy expert trainer.

PPO reaches the Hopper expert in well under a million frames on two cores, but not the
HalfCheetah, Ant or Humanoid targets; SAC's replay of every transition many times does.
Used only to train experts whose demonstrations GAIL then imitates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.objectives import SACLoss, SoftUpdate

from gail_lightning.errors import require_positive_model_args
from gail_lightning.networks import RunningNorm, make_actor, make_qvalue
from gail_lightning.online_module import OnlineModule

# What a transition keeps in the replay buffer (the collector batch holds more).
TRANSITION_KEYS = (
    "observation", "action", ("next", "observation"), ("next", "reward"),
    ("next", "done"), ("next", "terminated"),
)


class SACModule(OnlineModule):
    """Policy, twin Q networks and entropy temperature, trained by SAC from a replay buffer.

    Each training step adds one collector batch to the buffer and, once ``learning_starts``
    frames are in, takes ``updates_per_frame`` gradient steps per new frame on sampled
    minibatches, then moves the target Q networks towards the online ones.

    The replay buffer is not checkpointed (a million transitions is ~200 MB): a resumed
    run restores networks and optimizers and refills it before updating again.

    Args:
        obs_dim: observation size (linked from the DataModule by the CLI).
        action_low: lower bound of each action dimension (linked from the DataModule).
        action_high: upper bound of each action dimension (linked from the DataModule).
        hidden_sizes: hidden layer widths of the policy and Q networks (ReLU).
        lr: Adam learning rate of policy and Q networks.
        alpha_lr: Adam learning rate of the entropy temperature.
        gamma: discount factor.
        tau: target-network soft-update rate.
        batch_size: transitions per gradient step.
        buffer_size: replay buffer capacity in transitions.
        learning_starts: frames collected before the first update.
        updates_per_frame: gradient steps per collected frame.
        reward_scale: factor on the env reward.
    """

    def __init__(
        self,
        obs_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        hidden_sizes: Sequence[int] = (256, 256),
        lr: float = 3e-4,
        alpha_lr: float = 3e-4,
        gamma: float = 0.99,
        tau: float = 0.005,
        batch_size: int = 256,
        buffer_size: int = 1_000_000,
        learning_starts: int = 10_000,
        updates_per_frame: float = 1.0,
        reward_scale: float = 1.0,
    ) -> None:
        super().__init__()
        require_positive_model_args(lr=lr, alpha_lr=alpha_lr, batch_size=batch_size,
                                    buffer_size=buffer_size, updates_per_frame=updates_per_frame)
        self.save_hyperparameters()
        # Kept at identity: a normalizer that moved would change what replayed observations mean.
        self.obs_norm = RunningNorm(obs_dim)
        self.actor = make_actor(self.obs_norm, obs_dim, action_low, action_high, hidden_sizes,
                                state_dependent_scale=True, activation=nn.ReLU)
        self.loss = SACLoss(
            self.actor,
            make_qvalue(obs_dim, len(action_low), hidden_sizes),
            num_qvalue_nets=2,
            loss_function="l2",
        )
        self.loss.make_value_estimator(gamma=gamma)
        _ = self.loss.target_entropy  # registers its buffer now, as checkpoints hold it
        self.target_update = SoftUpdate(self.loss, tau=tau)
        self.buffer = ReplayBuffer(storage=LazyTensorStorage(buffer_size), batch_size=batch_size)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        actor = torch.optim.Adam(self.actor.parameters(), lr=self.hparams.lr)  # shared with the loss
        qvalue = torch.optim.Adam(self.loss.qvalue_network_params.values(True, True), lr=self.hparams.lr)
        alpha = torch.optim.Adam([self.loss.log_alpha], lr=self.hparams.alpha_lr)
        return [actor, qvalue, alpha]

    def training_step(self, dataloader_iter: Iterator) -> None:
        batch = self.next_batch(dataloader_iter)
        transitions = batch.reshape(-1).select(*TRANSITION_KEYS).clone()
        transitions["next", "reward"] = transitions["next", "reward"] * self.hparams.reward_scale
        self.buffer.extend(transitions.cpu())
        self.count_frames(batch.numel())
        if len(self.buffer) >= self.hparams.learning_starts:
            updates = max(1, round(batch.numel() * self.hparams.updates_per_frame))
            self.log_dict(self._sac_steps(updates), batch_size=1)
        self.log_dict(self.episode_metrics(batch), prog_bar=True, batch_size=1)

    def _sac_steps(self, updates: int) -> dict[str, torch.Tensor]:
        """``updates`` SAC gradient steps on replayed minibatches; returns mean losses."""
        totals: dict[str, list[torch.Tensor]] = {}
        for _ in range(updates):
            losses = self.loss(self.buffer.sample().to(self.device))
            loss = losses["loss_actor"] + losses["loss_qvalue"] + losses["loss_alpha"]
            self.update(loss, "SAC loss", *self.optimizers())
            self.target_update.step()
            for key in ("loss_actor", "loss_qvalue", "alpha", "entropy"):
                totals.setdefault(key, []).append(losses[key].detach())
        return {f"sac/{k}": torch.stack(v).mean() for k, v in totals.items()}
