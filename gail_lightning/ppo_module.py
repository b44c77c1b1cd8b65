"""The generator: a Gaussian policy and value network trained by PPO or TRPO on each batch's
reward. On its own it trains experts on the env reward; ``GAILModule`` replaces that reward."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from tensordict import TensorDictBase
from torchrl.objectives.value import GAE

from gail_lightning.errors import UserInputError, require_positive_model_args
from gail_lightning.networks import RunningNorm, make_actor, make_critic
from gail_lightning.online_module import FUSED_ADAM, OnlineModule, fuse_saved_adam
from gail_lightning.ppo import PPOLoss
from gail_lightning.settings import PPOSettings, TRPOSettings, plain, settings
from gail_lightning.trpo import trpo_step


class PPOModule(OnlineModule):
    """Policy (Gaussian actor) and value network, trained on each on-policy batch's reward.

    One training step: (1) ``reward_step`` trains a learned reward (none here; a
    discriminator in ``GAILModule``), (2) ``relabel_rewards`` sets the batch's reward (here
    the env's; D's in ``GAILModule``), times ``reward_scale``, (3) GAE, (4) the policy
    step: ``ppo.epochs`` epochs of clipped PPO on minibatches, or one TRPO step and an Adam
    fit of the value network.

    Args:
        obs_dim: observation size (linked from the DataModule by the CLI).
        action_low: lower bound of each action dimension (linked from the DataModule).
        action_high: upper bound of each action dimension (linked from the DataModule).
        hidden_sizes: hidden layer widths of policy and value network (tanh).
        init_log_std: the policy's initial log std (before the tanh squash; 0 = std 1).
            Lower starts closer to a deterministic expert, whose actions a discriminator
            could otherwise tell apart by their noise alone.
        gamma: discount factor.
        gae_lambda: GAE λ.
        policy_optimizer: ``ppo`` (clipped PPO) or ``trpo`` (natural-gradient step with KL
            ≤ ``trpo.max_kl``, as in the original GAIL).
        ppo: the PPO step (with ``trpo``: the value network's Adam fit).
        trpo: the TRPO step.
        max_grad_norm: gradient-norm clip for every update.
        anneal_lr: decay the policy and value learning rate linearly to 0 over the frame budget.
        reward_scale: factor on the reward the policy learns from (the env's here, D's in
            ``GAILModule``).
        compile_loss: ``torch.compile`` the PPO loss (forward and backward); needs a C++
            compiler and ≈20 s of compiling at start (1.6× faster minibatch steps on CPU
            with the TorchRL loss this replaced; not measured with ``ppo.PPOLoss``).
    """

    def __init__(
        self,
        obs_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        hidden_sizes: Sequence[int] = (100, 100),
        init_log_std: float = 0.0,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        policy_optimizer: Literal["ppo", "trpo"] = "ppo",
        ppo: PPOSettings = PPOSettings(),
        trpo: TRPOSettings = TRPOSettings(),
        max_grad_norm: float = 0.5,
        anneal_lr: bool = False,
        reward_scale: float = 1.0,
        compile_loss: bool = False,
    ) -> None:
        super().__init__()
        self.ppo, self.trpo = settings(PPOSettings, ppo), settings(TRPOSettings, trpo)
        require_positive_model_args(**{
            "ppo.lr": self.ppo.lr, "ppo.epochs": self.ppo.epochs,
            "ppo.minibatch_size": self.ppo.minibatch_size, "trpo.max_kl": self.trpo.max_kl,
        })
        if len(action_low) != len(action_high):
            raise UserInputError("action_low and action_high must have the same length.")
        self.save_hyperparameters()
        self.obs_norm = RunningNorm(obs_dim)
        self.actor = make_actor(self.obs_norm, obs_dim, action_low, action_high, hidden_sizes,
                                init_log_std=init_log_std)
        self.critic = make_critic(self.obs_norm, obs_dim, hidden_sizes)
        self.ppo_loss = PPOLoss(self.actor, self.critic, self.ppo.clip_epsilon, self.ppo.entropy_coeff,
                                self.ppo.critic_coeff)
        if compile_loss:
            self.ppo_loss.compile()  # in place: parameter names and checkpoints stay the same
        self.gae = GAE(gamma=gamma, lmbda=gae_lambda, value_network=self.critic)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["hyper_parameters"] = plain(checkpoint["hyper_parameters"])

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints from before ``ppo.PPOLoss`` (2026-12-03) also hold TorchRL's PPO
        loss's references to the actor's and critic's parameters: the same tensors again;
        experts from before this class (a ``GAILModule`` with ``reward: env``) an unused
        discriminator, whose optimizer's state comes last and is left out by Lightning. Adam
        states saved unfused resume fused (``fuse_saved_adam``)."""
        fuse_saved_adam(checkpoint)
        old_expert = checkpoint["hyper_parameters"].get("reward") == "env"
        stale = ("ppo_loss.", "discriminator.") if old_expert else ("ppo_loss.",)
        state, current = checkpoint["state_dict"], self.state_dict()
        for old in [k for k in state if k.startswith(stale) and k not in current]:
            del state[old]

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        # Actor and critic get their own optimizers so each one's gradient is clipped on its
        # own: a joint clip lets the large value-loss gradients shrink the policy's step.
        actor = torch.optim.Adam(self.actor.parameters(), lr=self.ppo.lr, eps=1e-5, **FUSED_ADAM)
        critic = torch.optim.Adam(self.critic.parameters(), lr=self.ppo.lr, eps=1e-5, **FUSED_ADAM)
        return [actor, critic]

    def setup(self, stage: str) -> None:
        super().setup(stage)
        batch, size = self.frames_per_batch, self.ppo.minibatch_size
        if batch is not None and batch % size:
            raise UserInputError(
                f"--data.frames_per_batch ({batch}) is not divisible by "
                f"--model.ppo.minibatch_size ({size}); pick sizes that divide evenly."
            )

    def training_step(self, dataloader_iter: Iterator) -> None:
        batch = self.next_batch(dataloader_iter)
        actor_opt, critic_opt = self.optimizers()[:2]
        metrics = self._proximal_log_prob(batch)  # before the reward step: AIRL's D reads them
        metrics |= self.reward_step(batch)
        metrics |= self.relabel_rewards(batch)
        batch["next", "reward"] = batch["next", "reward"] * self.hparams.reward_scale
        with torch.no_grad():
            self.gae(batch)
        flat = batch.reshape(-1)
        if self.hparams.policy_optimizer == "trpo":
            metrics |= self._trpo_step(flat, critic_opt)
        else:
            metrics |= self._ppo_step(flat, actor_opt, critic_opt)
        # Updated after the policy step, so the step and the batch's proximal log-probs see
        # the same normalization.
        self.obs_norm.update(batch["observation"])
        self.count_frames(batch.numel())
        self.log_dict(metrics, batch_size=1)
        self.log_dict(self.episode_metrics(batch), prog_bar=True, batch_size=1)

    def reward_step(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        """Train a learned reward on ``batch`` (``GAILModule``: its discriminator); return metrics."""
        return {}

    def relabel_rewards(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        """Put the reward the policy learns from in ``batch["next", "reward"]`` (here: the env's,
        as collected); return metrics."""
        return {}

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
        """``ppo.epochs`` passes of clipped PPO over shuffled minibatches; returns mean losses."""
        self._anneal_lr(actor_opt, critic_opt)
        totals: dict[str, list[torch.Tensor]] = {}
        flat = flat.select(*self.ppo_loss.in_keys)  # minibatches index only what the loss reads
        for _ in range(self.ppo.epochs):
            for idx in torch.randperm(flat.numel()).split(self.ppo.minibatch_size):
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
        """One TRPO step of the policy, then ``ppo.epochs`` Adam epochs of the value network."""
        advantage = flat["advantage"].squeeze(-1)
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        with torch.autocast(self.device.type, enabled=False):  # double backward in full precision
            metrics = trpo_step(self.actor, flat, advantage, self.trpo.max_kl, self.trpo.cg_damping)
        for name, value in metrics.items():
            if not torch.isfinite(value):
                self._diverged(name, value.item())
        self._anneal_lr(critic_opt)
        losses = []
        flat = flat.select("observation", "value_target")  # minibatches index only what V reads
        for _ in range(self.ppo.epochs):
            for idx in torch.randperm(flat.numel()).split(self.ppo.minibatch_size):
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
                group["lr"] = self.ppo.lr * fraction
