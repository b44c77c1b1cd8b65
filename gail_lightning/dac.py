"""GAIL with an off-policy generator: SAC on the discriminator's reward (Discriminator-Actor-
Critic, Kostrikov et al. 2019). PPO- and TRPO-GAIL stayed near a tenth of a walking
Humanoid expert after 500k frames (benchmarks/RESULTS.md, the Humanoid design probe), where
SAC, replaying each transition many times, took the expert itself past 4,000 in 400k."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from tensordict import TensorDictBase

from gail_lightning.adversary import Adversary
from gail_lightning.errors import UserInputError
from gail_lightning.networks import RunningNorm
from gail_lightning.sac import SACModule
from gail_lightning.settings import DiscriminatorSettings, WarmStartSettings


class DACModule(Adversary, SACModule):
    """``SACModule`` whose reward comes from a discriminator D(s, a) trained on expert pairs
    against the policy's replayed ones.

    Each training step adds a collector batch to the replay buffer; once
    ``learning_starts`` frames are in, D takes ``disc.steps`` Adam steps on expert
    minibatches against pairs drawn uniformly from the whole buffer (as in DAC; D's
    gradient is not clipped, SAC has no ``max_grad_norm``), then SAC takes its updates,
    each on a replayed minibatch whose reward is what D pays now (``relabel_rewards``)
    times ``reward_scale``. The actor's observation normalizer is fitted to the expert's
    observations once, before the first batch, and then stays fixed, so replayed
    observations keep their meaning. D has its own, following the buffer's observations
    (the pairs it is shown), as GAIL's follows the policy's batches: fitted to the expert's
    alone it left a beginner's Humanoid states so far out that D told every pair apart and
    paid ≈0.004 for all of them.

    Args:
        obs_dim, action_low, action_high: as in ``SACModule``.
        reward: ``survival`` = −log(1−D) or ``logit`` = log D − log(1−D), as in
            ``GAILModule`` (AIRL's needs the on-policy generator's log-probs).
        absorbing: as in ``GAILModule``: the TD target of a terminated transition is
            r + γ·r_abs/(1−γ), the discounted reward of the absorbing state ever after.
        disc: the discriminator's updates, ``steps`` per collector batch (so the ratio of D's
            steps to SAC's depends on ``data.frames_per_batch`` and ``updates_per_frame``).
        generator: the ``SACModule`` settings.
    """

    def __init__(
        self,
        obs_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        reward: Literal["survival", "logit"] = "survival",
        absorbing: bool = False,
        disc: DiscriminatorSettings = DiscriminatorSettings(steps=64, grad_penalty=10.0, hidden_sizes=(100, 100)),
        **generator: Any,
    ) -> None:
        if reward not in ("survival", "logit"):
            raise UserInputError(
                f"--model.reward {reward!r}: DACModule learns survival or logit; AIRL's reward needs "
                "the on-policy generator (the default model, GAILModule).")
        super().__init__(obs_dim, action_low, action_high, **generator)
        self.disc_norm = RunningNorm(obs_dim)
        self.build_adversary(self.disc_norm, obs_dim, len(action_low), reward, absorbing, disc, WarmStartSettings())

    def on_fit_start(self) -> None:
        if self.obs_norm.count == 0:  # once: a resumed run keeps the statistics it trained with
            self.obs_norm.update(self.expert["observation"].to(self.device))
        super().on_fit_start()

    def _sac_steps(self, updates: int) -> dict[str, torch.Tensor]:
        """D's steps against replayed pairs, then SAC's ``updates`` on D's reward."""
        replayed = self.buffer.sample(max(1, self.disc.steps) * self.disc.batch_size).to(self.device)
        self.disc_norm.update(replayed["observation"])
        metrics = self.discriminator_step(replayed)
        metrics |= self.relabel_rewards(replayed)  # what D pays now, for the logs
        return metrics | super()._sac_steps(updates)

    def replayed(self) -> TensorDictBase:
        """A replayed minibatch with D's reward in place of the env's, times ``reward_scale``."""
        batch = super().replayed()
        self.relabel_rewards(batch)
        batch["next", "reward"] = batch["next", "reward"] * self.hparams.reward_scale
        return batch
