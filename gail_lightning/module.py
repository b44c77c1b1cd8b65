"""GAIL as a LightningModule: the generator's PPO or TRPO step on the reward of a
discriminator trained on expert against policy pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

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
from gail_lightning.online_module import FUSED_ADAM
from gail_lightning.ppo_module import PPOModule
from gail_lightning.settings import (
    DiscriminatorSettings,
    WarmStartSettings,
    settings,
)


class GAILModule(PPOModule):
    """``PPOModule`` whose reward comes from a discriminator D(s, a) (Ho & Ermon 2016).

    In each training step ``reward_step`` takes ``disc.steps`` Adam steps of D on expert
    against policy minibatches, then ``relabel_rewards`` replaces the batch's env reward by
    D's, and the generator's GAE and policy step follow as in ``PPOModule``.

    Args:
        obs_dim, action_low, action_high: as in ``PPOModule``.
        reward: ``survival`` = −log(1−D), ``logit`` = log D − log(1−D), ``airl`` = the same of
            AIRL's D (Fu et al. 2018), f(s, a, s') − log π(a|s) with f = g(s, a) + γ·h(s') − h(s).
        absorbing: episodes that terminate (not those cut by the time limit) continue into an
            absorbing state that D scores like any other (DAC, Kostrikov et al. 2019): the
            terminal step's return adds γ·r_abs/(1−γ), the discounted reward of staying there.
            Without it ``survival`` pays for every step alive and ``logit`` charges for
            every step while D still tells the policy apart, whatever the expert did.
        disc: the discriminator's updates.
        bc: behavioral-cloning warm start of the policy on the demonstrations.
        generator: the ``PPOModule`` settings (the discriminator has the policy's
            ``hidden_sizes``).
    """

    def __init__(
        self,
        obs_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        reward: RewardKind = "survival",
        absorbing: bool = False,
        disc: DiscriminatorSettings = DiscriminatorSettings(),
        bc: WarmStartSettings = WarmStartSettings(),
        **generator: Any,
    ) -> None:
        if reward not in get_args(RewardKind):
            raise UserInputError(
                f"--model.reward {reward!r}: GAIL learns one of {', '.join(get_args(RewardKind))}; to train "
                "on the env reward use --model gail_lightning.PPOModule.")
        super().__init__(obs_dim, action_low, action_high, **generator)
        self.disc, self.bc = settings(DiscriminatorSettings, disc), settings(WarmStartSettings, bc)
        require_positive_model_args(**{"disc.lr": self.disc.lr, "bc.lr": self.bc.lr})
        if self.disc.steps < 0:
            raise UserInputError(f"--model.disc.steps must be >= 0 (0 = D never updated), got {self.disc.steps}.")
        hidden_sizes, gamma = self.hparams.hidden_sizes, self.hparams.gamma
        self.discriminator = Discriminator(self.obs_norm, obs_dim, len(action_low), hidden_sizes, absorbing,
                                           shaping_gamma=gamma if reward == "airl" else None)
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
                "<file>, or train an expert on the env reward with --model gail_lightning.PPOModule."
            )
        self.expert = datamodule.expert
        self.expert_absorbing_rate = datamodule.demonstrations.absorbing_rate

    def on_fit_start(self) -> None:
        steps = self.bc.steps
        if steps > 0 and self.frames == 0:  # not again when a run resumes
            expert = self.expert.to(self.device)
            self.obs_norm.update(expert["observation"])  # the cloned policy sees normalized input
            loss = clone_expert(self.actor, expert, steps, self.bc.batch_size, self.bc.lr)
            rank_zero_info(f"BC warm start: {steps} steps, final BC loss {loss.item():.3f}")

    def reward_step(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        return self._discriminator_step(batch.reshape(-1), self.optimizers()[2])

    @torch.no_grad()
    def relabel_rewards(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        """Replace the batch's env reward by D's reward. With absorbing states each terminal
        step also gains the discounted return of the absorbing state it leads to,
        γ·r_abs/(1−γ): GAE cuts the return at termination, so this is all that follows."""
        logits, _ = self._discriminator_logits(batch, None)
        batch["next", "reward"] = learned_reward(logits.float(), self.hparams.reward)
        metrics = {"reward/learned_mean": batch["next", "reward"].mean()}
        if self.hparams.absorbing:
            reward = learned_reward(self.discriminator.absorbing_logit().float(), self.hparams.reward)
            gamma = self.hparams.gamma
            batch["next", "reward"] += batch["next", "terminated"] * (gamma * reward / (1 - gamma))
            metrics["reward/absorbing"] = reward[0]
        return metrics

    def _discriminator_step(
        self, flat: TensorDictBase, opt: torch.optim.Optimizer
    ) -> dict[str, torch.Tensor]:
        """``disc.steps`` updates of D on fresh expert and policy minibatches; returns metrics.

        With absorbing states each side's minibatch holds the absorbing pair as often as its
        data does: once per terminated episode among the episodes' pairs."""
        if self.disc.steps == 0:
            return {}
        size = self.disc.batch_size
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
            self.update(loss, "discriminator loss", opt, max_grad_norm=self.hparams.max_grad_norm)
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

