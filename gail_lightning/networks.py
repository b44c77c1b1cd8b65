"""Policy, value and observation-normalization networks shared by every trainer."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from tensordict import TensorDictBase
from tensordict.nn import (
    AddStateIndependentNormalScale,
    NormalParamExtractor,
    TensorDictModule,
    TensorDictModuleBase,
)
from torch import nn
from torch.nn.utils import skip_init
from torchrl.data import Bounded
from torchrl.envs.utils import ExplorationType
from torchrl.modules import MLP, ProbabilisticActor, TanhNormal, ValueOperator
from torchrl.modules.distributions.utils import safetanh_noeps

from gail_lightning.distributed import all_sum_


class RunningNorm(nn.Module):
    """Running mean/std normalizer for observations, clipped to ``±clip``.

    Hand-written because it must be one module instance shared by policy, value and
    discriminator, updated by the trainer (not by the env) and saved in the
    LightningModule's ``state_dict``; torchrl's ``VecNorm`` lives in the env instead.
    """

    def __init__(self, size: int, clip: float = 10.0, eps: float = 1e-8) -> None:
        super().__init__()
        self.clip = clip
        self.eps = eps
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Merge the statistics of a batch ``[..., size]`` (parallel Welford update); under
        DDP the batch is the union of every rank's, so all ranks keep the same statistics."""
        x = x.reshape(-1, self.mean.numel()).to(torch.float64)
        sums = all_sum_(torch.cat([x.new_tensor([x.shape[0]]), x.sum(0), x.pow(2).sum(0)]))
        n, total_x, total_x2 = sums[0], sums[1:1 + x.shape[1]], sums[1 + x.shape[1]:]
        if n == 0:
            return
        batch_mean = total_x / n
        batch_var = (total_x2 / n - batch_mean.pow(2)).clamp_min(0.0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        m2 = self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = (self.var + self.eps).sqrt().to(x.dtype)
        return ((x - self.mean.to(x.dtype)) / std).clamp(-self.clip, self.clip)


def mlp(
    in_features: int,
    out_features: int,
    hidden_sizes: Sequence[int],
    output_gain: float | None = None,
    activation: type[nn.Module] = nn.Tanh,
) -> MLP:
    """MLP with orthogonal init; tanh units are the PPO/GAIL reference networks.

    ``output_gain`` re-initializes the output layer with that gain (PPO's small policy head).
    """
    net = MLP(
        in_features=in_features,
        out_features=out_features,
        num_cells=list(hidden_sizes),
        activation_class=activation,
    )
    for layer in net.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, 2**0.5)
            nn.init.zeros_(layer.bias)
    if output_gain is not None:
        last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.orthogonal_(last.weight, output_gain)
    return net


def make_actor(
    obs_norm: RunningNorm,
    obs_dim: int,
    action_low: Sequence[float],
    action_high: Sequence[float],
    hidden_sizes: Sequence[int],
    state_dependent_scale: bool = False,
    activation: type[nn.Module] = nn.Tanh,
    init_log_std: float = 0.0,
) -> ProbabilisticActor:
    """Gaussian policy squashed by tanh into the action box.

    The std is one learned vector starting at ``exp(init_log_std)`` (PPO, GAIL) or, with
    ``state_dependent_scale``, a second output head (SAC, whose entropy tuning needs a std
    that varies with the state).
    """
    action_dim = len(action_low)
    if state_dependent_scale:
        net = mlp(obs_dim, 2 * action_dim, hidden_sizes, output_gain=0.01, activation=activation)
        head = NormalParamExtractor(scale_lb=1e-4)
    else:  # near-zero initial mean action
        net = mlp(obs_dim, action_dim, hidden_sizes, output_gain=0.01, activation=activation)
        head = AddStateIndependentNormalScale(action_dim, scale_lb=1e-4, init_value=init_log_std)
    low = torch.as_tensor(action_low, dtype=torch.float32).clone()
    high = torch.as_tensor(action_high, dtype=torch.float32).clone()
    module = TensorDictModule(
        nn.Sequential(obs_norm, net, head), in_keys=["observation"], out_keys=["loc", "scale"]
    )
    return ProbabilisticActor(
        module,
        in_keys=["loc", "scale"],
        spec=Bounded(low, high, shape=(action_dim,)),
        distribution_class=TanhNormal,
        distribution_kwargs={"low": low, "high": high, "tanh_loc": False},
        return_log_prob=True,
        default_interaction_type=ExplorationType.RANDOM,
    )


class SquashedGaussian(nn.Module):
    """A ``make_actor`` policy in plain torch: its networks (shared, not copied; not in this
    module's ``state_dict``) and its action box.

    Hand-written because the actor's generic path (a distribution object per call,
    ``TensorDict.from_any`` per output key) cost 0.75 ms per call against 0.09 ms for its
    networks (8 envs, one core): more than the MuJoCo steps it drives.
    """

    def __init__(self, actor: ProbabilisticActor) -> None:
        super().__init__()
        self._networks = (actor.module[0].module,)  # observation -> (loc, scale); a tuple keeps it unregistered
        bounds = actor.module[-1].distribution_kwargs
        self.register_buffer("center", (bounds["high"] + bounds["low"]) / 2, persistent=False)
        self.register_buffer("radius", (bounds["high"] - bounds["low"]) / 2, persistent=False)

    def forward(self, observation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gaussian's ``loc`` and ``scale`` before the squash, in float32 also under
        bf16 autocast: the squash's bound (1 − resolution) and log-probs need it."""
        loc, scale = self._networks[0](observation)
        return loc.float(), scale.float()

    def sample(self, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """An action drawn from the tanh-squashed Gaussian (reparameterized: differentiable
        in ``loc`` and ``scale``), kept inside the box as TorchRL's ``TanhNormal`` keeps it."""
        lim = 1.0 - torch.finfo(loc.dtype).resolution  # TanhNormal's safe tanh bound
        return self.center + self.radius * (loc + scale * torch.randn_like(loc)).tanh().clamp(-lim, lim)

    def log_prob(self, action: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Log-density of ``action``, through the inverse tanh of the action, as
        ``TanhNormal.log_prob`` computes it."""
        lim = 1.0 - torch.finfo(loc.dtype).resolution
        pre = ((action - self.center) / self.radius).clamp(-lim, lim).atanh()
        return (
            -((pre - loc) / scale).pow(2) / 2 - scale.log() - math.log(math.sqrt(2 * math.pi))
            - 2 * (math.log(2) - pre - nn.functional.softplus(-2 * pre))  # log |d tanh / d pre|
            - self.radius.log()
        ).sum(-1)

    def rsample_and_log_prob(self, loc: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterized action and its log-density, scored at the Gaussian draw itself
        (not at the inverse tanh of the action, which where tanh saturates is another draw),
        with the terms, order and ``safetanh`` gradient of ``TanhNormal.rsample_and_log_prob``:
        SAC's losses must match TorchRL's ``SACLoss``."""
        pre = loc + torch.randn_like(loc) * scale
        action = self.center + self.radius * safetanh_noeps(pre)
        gaussian = -((pre - loc) ** 2) / (2 * scale**2) - scale.log() - math.log(math.sqrt(2 * math.pi))
        squash = 2.0 * (math.log(2.0) - pre - nn.functional.softplus(-2.0 * pre)) + self.radius.log()
        return action, gaussian.sum(-1) - squash.sum(-1)


class ActionSampler(TensorDictModuleBase):
    """Draws actions from a ``make_actor`` policy for collection: ``SquashedGaussian``'s
    draw, with the ``action_log_prob`` that the actor's ``TanhNormal`` gives it."""

    in_keys = ["observation"]
    out_keys = ["loc", "scale", "action", "action_log_prob"]

    def __init__(self, actor: ProbabilisticActor) -> None:
        super().__init__()
        self.policy = SquashedGaussian(actor)

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        loc, scale = self.policy(tensordict.get("observation"))
        action = self.policy.sample(loc, scale)
        log_prob = self.policy.log_prob(action, loc, scale)
        for key, value in zip(self.out_keys, (loc, scale, action, log_prob)):
            tensordict.set(key, value)
        return tensordict


class FullPrecisionLinear(nn.Linear):
    """``nn.Linear`` computed in float32 also under autocast (same parameters and checkpoint
    keys). The value head: in bf16 values near 100 are 0.5 apart, as far apart as one
    step's GAIL reward, so advantages and value targets would be mostly rounding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())


def make_critic(obs_norm: RunningNorm, obs_dim: int, hidden_sizes: Sequence[int]) -> ValueOperator:
    """State-value network V(s) on normalized observations, its output layer in float32."""
    net = mlp(obs_dim, 1, hidden_sizes, output_gain=1.0)
    head = skip_init(FullPrecisionLinear, net[-1].in_features, 1)  # draws no random numbers
    head.load_state_dict(net[-1].state_dict())
    net[-1] = head
    return ValueOperator(nn.Sequential(obs_norm, net), in_keys=["observation"])


def make_qvalue(
    obs_dim: int, action_dim: int, hidden_sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU
) -> ValueOperator:
    """Action-value network Q(s, a) on raw observations (SAC's critic)."""
    net = mlp(obs_dim + action_dim, 1, hidden_sizes, output_gain=1.0, activation=activation)
    return ValueOperator(net, in_keys=["observation", "action"], out_keys=["state_action_value"])
