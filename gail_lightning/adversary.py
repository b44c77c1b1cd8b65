"""The adversary both GAIL generators share: a discriminator D(s, a) trained on expert against
policy pairs, the reward it pays, and the BC warm start. ``GAILModule`` puts it on the
on-policy generator (PPO or TRPO), ``DACModule`` on the off-policy one (SAC)."""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_info
from tensordict import TensorDict, TensorDictBase

from gail_lightning.bc import clone_expert
from gail_lightning.discriminator import (
    Discriminator,
    RewardKind,
    absorbing_flags,
    discriminator_loss,
    gradient_penalty,
    learned_reward,
)
from gail_lightning.errors import UserInputError, require_positive_model_args
from gail_lightning.networks import RunningNorm
from gail_lightning.online_module import FUSED_ADAM
from gail_lightning.settings import DiscriminatorSettings, WarmStartSettings, plain, settings


class Adversary:
    """Mixin for an ``OnlineModule`` generator (listed first among the bases). The subclass
    calls ``build_adversary`` in ``__init__`` after the generator's; D's optimizer comes last
    in ``optimizers()``. Reads the generator's ``actor``, ``update`` and
    ``hparams`` (``reward``, ``absorbing``, ``gamma``)."""

    discriminator: Discriminator
    disc: DiscriminatorSettings
    bc: WarmStartSettings

    def build_adversary(
        self, obs_norm: RunningNorm, obs_dim: int, action_dim: int, reward: RewardKind, absorbing: bool,
        disc: DiscriminatorSettings | dict, bc: WarmStartSettings | dict,
    ) -> None:
        """D (tanh, ``disc.hidden_sizes`` or the policy's) reading observations through ``obs_norm``."""
        self.disc, self.bc = settings(DiscriminatorSettings, disc), settings(WarmStartSettings, bc)
        require_positive_model_args(**{"disc.lr": self.disc.lr, "bc.lr": self.bc.lr})
        if self.disc.steps < 0:
            raise UserInputError(f"--model.disc.steps must be >= 0 (0 = D never updated), got {self.disc.steps}.")
        hidden_sizes = self.disc.hidden_sizes or self.hparams.hidden_sizes
        self.discriminator = Discriminator(obs_norm, obs_dim, action_dim, hidden_sizes, absorbing,
                                           shaping_gamma=self.hparams.gamma if reward == "airl" else None)
        self.expert: TensorDict | None = None
        self.expert_absorbing_rate = 0.0  # the absorbing pairs' share of the expert's pairs

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        disc = torch.optim.Adam(self.discriminator.parameters(), lr=self.disc.lr, **FUSED_ADAM)
        return [*super().configure_optimizers(), disc]

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        if datamodule is None or datamodule.expert is None:
            raise UserInputError(
                f"--model.reward {self.hparams.reward} learns from demonstrations: pass --data.demos "
                "<file>, or train an expert on the env reward with a config in configs/experts/."
            )
        self.expert = datamodule.expert
        self.expert_absorbing_rate = datamodule.demonstrations.absorbing_rate

    def on_fit_start(self) -> None:
        super().on_fit_start()
        steps = self.bc.steps
        if steps > 0 and self.frames == 0:  # not again when a run resumes
            expert = self.expert.to(self.device)
            if self.obs_norm.count == 0:
                self.obs_norm.update(expert["observation"])  # the cloned policy sees normalized input
            loss = clone_expert(self.actor, expert, steps, self.bc.batch_size, self.bc.lr)
            rank_zero_info(f"BC warm start: {steps} steps, final BC loss {loss.item():.3f}")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["hyper_parameters"] = plain(checkpoint["hyper_parameters"])

    @torch.no_grad()
    def relabel_rewards(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        """Replace the batch's env reward by D's reward. With absorbing states each terminal
        step also gains the discounted return of the absorbing state it leads to,
        γ·r_abs/(1−γ): the return (GAE's, or SAC's TD target) stops at termination, so this
        is all that follows."""
        logits, _ = self._discriminator_logits(batch, None)
        batch["next", "reward"] = learned_reward(logits.float(), self.hparams.reward)
        metrics = {"reward/learned_mean": batch["next", "reward"].mean()}
        if self.hparams.absorbing:
            reward = learned_reward(self.discriminator.absorbing_logit().float(), self.hparams.reward)
            gamma = self.hparams.gamma
            batch["next", "reward"] += batch["next", "terminated"] * (gamma * reward / (1 - gamma))
            metrics["reward/absorbing"] = reward[0]
        return metrics

    def discriminator_step(self, flat: TensorDictBase) -> dict[str, torch.Tensor]:
        """``disc.steps`` updates of D on fresh expert minibatches against minibatches drawn
        from the policy's pairs ``flat``; returns metrics.

        With absorbing states each side's minibatch holds the absorbing pair as often as its
        data does: once per terminated episode among the episodes' pairs."""
        if self.disc.steps == 0:
            return {}
        opt, size = self.optimizers()[-1], self.disc.batch_size
        policy_rate = 0.0
        if self.hparams.absorbing:
            terminated = flat["next", "terminated"].sum().item()
            policy_rate = terminated / (flat.numel() + terminated)
        keys = ["observation", "action"]
        if self.hparams.reward == "airl":
            keys += [("next", "observation"), ("next", "terminated")]
        expert_data = self.expert.select(*keys)  # minibatches index only what D reads
        flat = flat.select(*keys, *(["proximal_log_prob"] if self.hparams.reward == "airl" else []))
        for _ in range(self.disc.steps):
            expert_pairs = expert_data[torch.randint(len(expert_data), (size,))].to(self.device)
            expert_flags = self._absorbing_flags(size, self.expert_absorbing_rate)
            expert_logits, expert = self._discriminator_logits(expert_pairs, expert_flags)
            policy_pairs = flat[torch.randint(flat.numel(), (size,))]
            policy_logits, policy = self._discriminator_logits(policy_pairs, self._absorbing_flags(size, policy_rate))
            loss = discriminator_loss(expert_logits.float(), policy_logits.float())
            if self.disc.grad_penalty > 0:
                loss = loss + self.disc.grad_penalty * gradient_penalty(self.discriminator, expert, policy)
            self.update(loss, "discriminator loss", opt, max_grad_norm=self.hparams.get("max_grad_norm"))
        return {
            "loss/discriminator": loss.detach(),
            "disc/expert_accuracy": (expert_logits > 0).float().mean(),
            "disc/policy_accuracy": (policy_logits < 0).float().mean(),
        }

    def _absorbing_flags(self, count: int, rate: float) -> torch.Tensor | None:
        """Which of ``count`` pairs drawn from data whose share ``rate`` of pairs is the
        absorbing pair are it (with absorbing states; None without)."""
        return absorbing_flags(count, rate, self.device) if self.hparams.absorbing else None

    def _discriminator_logits(
        self, pairs: TensorDictBase, absorbing: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """D's logits for ``pairs`` (those ``absorbing`` flags being the absorbing pair), and
        the inputs of its network ``net`` (for the gradient penalty). With AIRL the logit is
        g + γ·h(s') − h(s) − log π(a|s), log π under the current policy: the pairs'
        ``proximal_log_prob``, or computed here for expert pairs."""
        inputs = self.discriminator.inputs(pairs["observation"], pairs["action"], absorbing)
        logits = self.discriminator.net(inputs)
        if self.hparams.reward == "airl":
            log_prob = pairs.get("proximal_log_prob", None)
            if log_prob is None:
                log_prob = self._current_log_prob(pairs)
            log_prob = log_prob.unsqueeze(-1) * (1 if absorbing is None else 1 - absorbing)
            shaping = self.discriminator.shaping(
                pairs["observation"], pairs["next", "observation"], pairs["next", "terminated"], absorbing)
            logits = logits + shaping - log_prob
        return logits, inputs
