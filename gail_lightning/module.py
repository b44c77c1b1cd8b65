"""GAIL as a LightningModule: the generator's PPO or TRPO step on the reward of a
discriminator trained on expert against policy pairs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

import torch
from tensordict import TensorDictBase

from gail_lightning.adversary import Adversary
from gail_lightning.discriminator import RewardKind
from gail_lightning.errors import UserInputError
from gail_lightning.ppo_module import PPOModule
from gail_lightning.settings import DiscriminatorSettings, WarmStartSettings


class GAILModule(Adversary, PPOModule):
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
        generator: the ``PPOModule`` settings.
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
        self.build_adversary(self.obs_norm, obs_dim, len(action_low), reward, absorbing, disc, bc)

    def reward_step(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        return self.discriminator_step(batch.reshape(-1))
