"""GAIL as a LightningModule: discriminator step, reward relabel, PPO step per batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from lightning.pytorch.utilities import rank_zero_info
from tensordict import TensorDict, TensorDictBase
from torchrl.objectives.value import GAE

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
from gail_lightning.networks import RunningNorm, make_actor, make_critic
from gail_lightning.online_module import OnlineModule
from gail_lightning.ppo import PPOLoss
from gail_lightning.trpo import trpo_step


class GAILModule(OnlineModule):
    """Policy (Gaussian actor), value network and discriminator D(s, a), trained with GAIL.

    One training step consumes one on-policy batch from the collector:
    (1) ``disc_steps`` Adam steps of D on expert vs policy minibatches, (2) the batch's
    reward is replaced by the learned reward, (3) GAE and the policy step: ``ppo_epochs``
    epochs of clipped PPO on minibatches, or one TRPO step. With ``reward="env"`` steps
    (1)-(2) are skipped and the policy trains on the true environment reward: that is how
    the project trains its PPO experts.

    Args:
        obs_dim: observation size (linked from the DataModule by the CLI).
        action_low: lower bound of each action dimension (linked from the DataModule).
        action_high: upper bound of each action dimension (linked from the DataModule).
        reward: ``survival`` = −log(1−D), ``logit`` = log D − log(1−D), ``airl`` = the same of
            AIRL's D (Fu et al. 2018), f(s, a, s') − log π(a|s) with f = g(s, a) + γ·h(s') − h(s),
            ``env`` = true reward.
        absorbing: episodes that terminate (not those cut by the time limit) continue into an
            absorbing state that D scores like any other (DAC, Kostrikov et al. 2019): the
            terminal step's return adds γ·r_abs/(1−γ), the discounted reward of staying there.
            Without it ``survival`` pays for every step alive and ``logit`` charges for
            every step while D still tells the policy apart, whatever the expert did.
        hidden_sizes: hidden layer widths of policy, value and discriminator (tanh).
        init_log_std: the policy's initial log std (before the tanh squash; 0 = std 1).
            Lower starts closer to a deterministic expert, whose actions D could otherwise
            tell apart by their noise alone.
        policy_lr: Adam learning rate of policy and value network.
        disc_lr: Adam learning rate of the discriminator.
        disc_steps: discriminator updates per batch; 0 never updates D, whose reward then stays
            what its random initialization gives: the survival-only control of a result.
        disc_batch_size: expert pairs (and as many policy pairs) per discriminator update
            (and per warm-start step).
        grad_penalty: weight of the gradient penalty on D (0 turns it off).
        gamma: discount factor.
        gae_lambda: GAE λ.
        ppo_epochs: passes over each batch in the PPO step.
        minibatch_size: PPO minibatch size in frames; must divide the batch size.
        clip_epsilon: PPO ratio clip.
        entropy_coeff: weight of the policy entropy bonus.
        critic_coeff: weight of the value loss.
        max_grad_norm: gradient-norm clip for every update (through Lightning).
        reward_scale: factor on the true env reward (``reward="env"`` only).
        anneal_lr: decay the policy learning rate linearly to 0 over the frame budget.
        bc_pretrain_steps: behavioral-cloning steps on the demonstrations before GAIL starts
            (warm start; 0 turns it off). Each step uses ``disc_batch_size`` expert pairs.
        bc_lr: Adam learning rate of the warm start.
        policy_optimizer: ``ppo`` (clipped PPO) or ``trpo`` (natural-gradient step with KL
            ≤ ``max_kl``, as in the original GAIL; ``ppo_epochs`` and ``minibatch_size`` then
            set the value network's Adam fit, ``policy_lr`` its learning rate).
        max_kl: TRPO's bound on the mean KL between the old and the new policy.
        cg_damping: damping added to TRPO's Fisher-vector products.
        compile_loss: ``torch.compile`` the PPO loss (forward and backward); needs a C++
            compiler and ≈20 s of compiling at start (1.6× faster minibatch steps on CPU
            with the TorchRL loss this replaced; not measured with ``ppo.PPOLoss``).
    """

    def __init__(
        self,
        obs_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        reward: RewardKind = "survival",
        absorbing: bool = False,
        hidden_sizes: Sequence[int] = (100, 100),
        init_log_std: float = 0.0,
        policy_lr: float = 3e-4,
        disc_lr: float = 3e-4,
        disc_steps: int = 5,
        disc_batch_size: int = 256,
        grad_penalty: float = 0.0,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        ppo_epochs: int = 10,
        minibatch_size: int = 64,
        clip_epsilon: float = 0.2,
        entropy_coeff: float = 0.0,
        critic_coeff: float = 0.5,
        max_grad_norm: float = 0.5,
        reward_scale: float = 1.0,
        anneal_lr: bool = False,
        bc_pretrain_steps: int = 0,
        bc_lr: float = 1e-3,
        policy_optimizer: Literal["ppo", "trpo"] = "ppo",
        max_kl: float = 0.01,
        cg_damping: float = 0.1,
        compile_loss: bool = False,
    ) -> None:
        super().__init__()
        require_positive_model_args(
            policy_lr=policy_lr, disc_lr=disc_lr, bc_lr=bc_lr,
            minibatch_size=minibatch_size, ppo_epochs=ppo_epochs, max_kl=max_kl,
        )
        if disc_steps < 0:
            raise UserInputError(f"--model.disc_steps must be >= 0 (0 = D never updated), got {disc_steps}.")
        if len(action_low) != len(action_high):
            raise UserInputError("action_low and action_high must have the same length.")
        if absorbing and reward == "env":
            raise UserInputError(
                "--model.absorbing true gives the absorbing state a learned reward; with "
                "--model.reward env there is none: use --model.reward logit or survival."
            )
        self.save_hyperparameters()
        self.obs_norm = RunningNorm(obs_dim)
        self.actor = make_actor(self.obs_norm, obs_dim, action_low, action_high, hidden_sizes,
                                init_log_std=init_log_std)
        self.critic = make_critic(self.obs_norm, obs_dim, hidden_sizes)
        self.discriminator = Discriminator(self.obs_norm, obs_dim, len(action_low), hidden_sizes, absorbing,
                                           shaping_gamma=gamma if reward == "airl" else None)
        self.ppo_loss = PPOLoss(self.actor, self.critic, clip_epsilon, entropy_coeff, critic_coeff)
        if compile_loss:
            self.ppo_loss.compile()  # in place: parameter names and checkpoints stay the same
        self.gae = GAE(gamma=gamma, lmbda=gae_lambda, value_network=self.critic)
        self.expert: TensorDict | None = None
        self.expert_absorbing_rate = 0.0  # the absorbing pairs' share of the expert's pairs

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints from before ``ppo.PPOLoss`` (2026-12-03) also hold TorchRL's PPO
        loss's references to the actor's and critic's parameters: the same tensors again."""
        state, current = checkpoint["state_dict"], self.state_dict()
        for old in [k for k in state if k.startswith("ppo_loss.") and k not in current]:
            del state[old]

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        # Actor and critic get their own optimizers so each one's gradient is clipped on its
        # own: a joint clip lets the large value-loss gradients shrink the policy's step.
        # fused: one kernel per step instead of one per parameter, 0.08 ms against 0.24 for
        # the actor's step on CPU, 80 times per batch
        actor = torch.optim.Adam(self.actor.parameters(), lr=self.hparams.policy_lr, eps=1e-5, fused=True)
        critic = torch.optim.Adam(self.critic.parameters(), lr=self.hparams.policy_lr, eps=1e-5, fused=True)
        disc = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.disc_lr, fused=True)
        return [actor, critic, disc]

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        batch = self.frames_per_batch
        if batch is not None and batch % self.hparams.minibatch_size:
            raise UserInputError(
                f"--data.frames_per_batch ({batch}) is not divisible by "
                f"--model.minibatch_size ({self.hparams.minibatch_size}); pick sizes that divide evenly."
            )
        if datamodule is not None and datamodule.expert is not None:
            self.expert = datamodule.expert
            self.expert_absorbing_rate = datamodule.demonstrations.absorbing_rate
        elif self.hparams.reward != "env":
            raise UserInputError(
                f"reward={self.hparams.reward!r} learns from demonstrations: pass "
                "--data.demos <file>, or use --model.reward env to train an expert."
            )
        elif self.hparams.bc_pretrain_steps > 0:
            raise UserInputError(
                "--model.bc_pretrain_steps clones demonstrations: pass --data.demos <file> or set it to 0."
            )

    def on_fit_start(self) -> None:
        steps = self.hparams.bc_pretrain_steps
        if steps > 0 and self.frames == 0:  # not again when a run resumes
            expert = self.expert.to(self.device)
            self.obs_norm.update(expert["observation"])  # the cloned policy sees normalized input
            loss = clone_expert(self.actor, expert, steps, self.hparams.disc_batch_size, self.hparams.bc_lr)
            rank_zero_info(f"BC warm start: {steps} steps, final BC loss {loss.item():.3f}")

    def training_step(self, dataloader_iter: Iterator) -> None:
        batch = self.next_batch(dataloader_iter)
        actor_opt, critic_opt, disc_opt = self.optimizers()
        metrics = self._proximal_log_prob(batch)  # AIRL's D reads them
        flat = batch.reshape(-1)
        if self.hparams.reward == "env":
            batch["next", "reward"] = batch["next", "reward"] * self.hparams.reward_scale
        else:
            metrics |= self._discriminator_step(flat, disc_opt)
            metrics |= self.relabel_rewards(batch)
        with torch.no_grad():
            self.gae(batch)
        if self.hparams.policy_optimizer == "trpo":
            metrics |= self._trpo_step(batch.reshape(-1), critic_opt)
        else:
            metrics |= self._ppo_step(batch.reshape(-1), actor_opt, critic_opt)
        # Updated after the PPO step, so the step and the batch's proximal log-probs see the
        # same normalization.
        self.obs_norm.update(batch["observation"])
        self.count_frames(batch.numel())
        self.log_dict(metrics, batch_size=1)
        self.log_dict(self.episode_metrics(batch), prog_bar=True, batch_size=1)

    def _discriminator_step(
        self, flat: TensorDictBase, opt: torch.optim.Optimizer
    ) -> dict[str, torch.Tensor]:
        """``disc_steps`` updates of D on fresh expert and policy minibatches; returns metrics.

        With absorbing states each side's minibatch holds the absorbing pair as often as its
        data does: once per terminated episode among the episodes' pairs."""
        if self.hparams.disc_steps == 0:
            return {}
        size = self.hparams.disc_batch_size
        policy_rate = 0.0
        if self.hparams.absorbing:
            terminated = flat["next", "terminated"].sum().item()
            policy_rate = terminated / (flat.numel() + terminated)
        keys = ["observation", "action"]
        if self.hparams.reward == "airl":
            keys += [("next", "observation"), ("next", "terminated")]
        expert_data = self.expert.select(*keys)  # minibatches index only what D reads
        flat = flat.select(*keys, *(["proximal_log_prob"] if self.hparams.reward == "airl" else []))
        for _ in range(self.hparams.disc_steps):
            expert_pairs = expert_data[torch.randint(len(expert_data), (size,))].to(self.device)
            expert_flags = self._absorbing_flags(size, self.expert_absorbing_rate)
            expert_logits, expert = self._discriminator_logits(expert_pairs, expert_flags)
            policy_pairs = flat[torch.randint(flat.numel(), (size,))]
            policy_logits, policy = self._discriminator_logits(policy_pairs, self._absorbing_flags(size, policy_rate))
            loss = discriminator_loss(expert_logits.float(), policy_logits.float())
            if self.hparams.grad_penalty > 0:
                loss = loss + self.hparams.grad_penalty * gradient_penalty(self.discriminator, expert, policy)
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

    @torch.no_grad()
    def _current_log_prob(self, pairs: TensorDictBase) -> torch.Tensor:
        """log π(a|s) of the pairs' actions under the current policy."""
        policy = self.ppo_loss.policy
        return policy.log_prob(pairs["action"], *policy(pairs["observation"]))

    @torch.no_grad()
    def _proximal_log_prob(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        """Store the batch's log-probs under the current policy, the proximal policy of the
        PPO step (``ppo.PPOLoss``); return how far it is from the policy that collected the
        batch: the importance ratio π/π_behaviour of the batch's actions and the KL estimate
        E[r − 1 − log r] (1 and 0 when collection is strictly on-policy)."""
        batch["proximal_log_prob"] = self._current_log_prob(batch)
        log_ratio = (batch["proximal_log_prob"] - batch["action_log_prob"]).float()
        ratio = log_ratio.exp()
        return {
            "lag/ratio_mean": ratio.mean(),
            "lag/ratio_max": ratio.max(),
            "lag/kl": (ratio - 1 - log_ratio).mean(),
        }

    def _ppo_step(
        self, flat: TensorDictBase, actor_opt: torch.optim.Optimizer, critic_opt: torch.optim.Optimizer
    ) -> dict[str, torch.Tensor]:
        """``ppo_epochs`` passes of clipped PPO over shuffled minibatches; returns mean losses."""
        size = self.hparams.minibatch_size
        self._anneal_lr(actor_opt, critic_opt)
        totals: dict[str, list[torch.Tensor]] = {}
        flat = flat.select(*self.ppo_loss.in_keys)  # minibatches index only what the loss reads
        for _ in range(self.hparams.ppo_epochs):
            for idx in torch.randperm(flat.numel()).split(size):
                losses = self.ppo_loss(flat[idx])
                loss = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
                self.update(loss, "PPO loss", actor_opt, critic_opt, max_grad_norm=self.hparams.max_grad_norm)
                for key in ("loss_objective", "loss_critic", "entropy", "kl_approx", "clip_fraction"):
                    totals.setdefault(key, []).append(losses[key].detach())
        metrics = {f"ppo/{k}": torch.stack(v).mean() for k, v in totals.items()}
        return {**metrics, "ppo/lr": torch.tensor(actor_opt.param_groups[0]["lr"])}

    def _trpo_step(
        self, flat: TensorDictBase, critic_opt: torch.optim.Optimizer
    ) -> dict[str, torch.Tensor]:
        """One TRPO step of the policy, then ``ppo_epochs`` Adam epochs of the value network."""
        advantage = flat["advantage"].squeeze(-1)
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        with torch.autocast(self.device.type, enabled=False):  # double backward in full precision
            metrics = trpo_step(self.actor, flat, advantage, self.hparams.max_kl, self.hparams.cg_damping)
        for name, value in metrics.items():
            if not torch.isfinite(value):
                self._diverged(name, value.item())
        self._anneal_lr(critic_opt)
        losses = []
        flat = flat.select("observation", "value_target")  # minibatches index only what V reads
        for _ in range(self.hparams.ppo_epochs):
            for idx in torch.randperm(flat.numel()).split(self.hparams.minibatch_size):
                minibatch = flat[idx]
                value = self.critic(minibatch.select("observation"))["state_value"]
                loss = 0.5 * (value - minibatch["value_target"]).pow(2).mean()
                self.update(loss, "value loss", critic_opt, max_grad_norm=self.hparams.max_grad_norm)
                losses.append(loss.detach())
        return {**metrics, "trpo/loss_critic": torch.stack(losses).mean()}

    def _anneal_lr(self, *opts: torch.optim.Optimizer) -> None:
        if not self.hparams.anneal_lr or self._trainer is None:
            return
        fraction = max(0.0, 1.0 - self.frames.item() / self.total_frames)
        for opt in opts:
            for group in opt.param_groups:
                group["lr"] = self.hparams.policy_lr * fraction
