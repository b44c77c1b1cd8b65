"""TRPO's policy step (Schulman et al. 2015), as in OpenAI Baselines' GAIL: a natural-
gradient step on the surrogate, found by conjugate gradient on Fisher-vector products, then
a backtracking line search that keeps only a step that improves the surrogate within the
KL bound. Written once here because no installed library has it (torchrl has no TRPO loss).
Under DDP the gradient, the Fisher-vector products and the line search's surrogate and KL
are means over ranks, so every rank takes the same step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from tensordict import TensorDictBase
from torch.distributions import Normal, kl_divergence
from torch.nn.utils import parameters_to_vector, vector_to_parameters
from torchrl.modules import ProbabilisticActor

from gail_lightning.distributed import all_mean


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int = 10, tol: float = 1e-10
) -> torch.Tensor:
    """Approximately solve ``A x = b`` for symmetric positive-definite ``A`` given as ``matvec``."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr < tol:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x += alpha * p
        r -= alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def _gaussian(actor: ProbabilisticActor, batch: TensorDictBase) -> Normal:
    """The pre-tanh Gaussian of the policy. KL is invariant under the tanh bijection, so the
    Gaussians' closed-form KL is the policies' KL."""
    out = actor.module[0](batch.select(*actor.module[0].in_keys).clone())
    return Normal(out["loc"], out["scale"])


def trpo_step(
    actor: ProbabilisticActor,
    batch: TensorDictBase,
    advantage: torch.Tensor,
    max_kl: float = 0.01,
    damping: float = 0.1,
    cg_iters: int = 10,
    backtracks: int = 10,
) -> dict[str, torch.Tensor]:
    """Update ``actor`` in place by one TRPO step on ``batch`` (observations and actions).

    Returns the surrogate improvement, the KL of the accepted step and the step fraction
    (0 when no fraction of the natural step both improved the surrogate and kept
    KL ≤ ``max_kl``: then the policy is left unchanged).
    """
    params = [p for p in actor.parameters() if p.requires_grad]
    action = batch["action"]
    with torch.no_grad():
        old = _gaussian(actor, batch)
        old = Normal(old.loc.detach(), old.scale.detach())
        old_log_prob = actor.get_dist(batch.clone()).log_prob(action)

    def surrogate() -> torch.Tensor:
        log_prob = actor.get_dist(batch.clone()).log_prob(action)
        return (torch.exp(log_prob - old_log_prob) * advantage).mean()

    def mean_kl() -> torch.Tensor:
        return kl_divergence(old, _gaussian(actor, batch)).sum(-1).mean()

    loss = surrogate()
    grad = all_mean(parameters_to_vector(torch.autograd.grad(loss, params)))
    kl_grad = parameters_to_vector(torch.autograd.grad(mean_kl(), params, create_graph=True))

    def fisher_vector(v: torch.Tensor) -> torch.Tensor:
        hv = torch.autograd.grad(kl_grad @ v, params, retain_graph=True)
        return all_mean(parameters_to_vector(hv)) + damping * v

    direction = conjugate_gradient(fisher_vector, grad, cg_iters)
    # Scaled so that the quadratic model of the KL, ½ sᵀF s, equals max_kl.
    shs = 0.5 * direction @ fisher_vector(direction)
    full_step = direction / torch.sqrt(shs.clamp_min(1e-12) / max_kl)
    start = parameters_to_vector(params).detach()
    zero = torch.zeros(())
    with torch.no_grad():
        loss = all_mean(loss)
        for k in range(backtracks):
            fraction = 0.5**k
            vector_to_parameters(start + fraction * full_step, params)
            improvement, kl = all_mean(surrogate()) - loss, all_mean(mean_kl())
            if torch.isfinite(kl) and kl <= max_kl and improvement > 0:
                return {"trpo/improvement": improvement, "trpo/kl": kl, "trpo/step_fraction": torch.tensor(fraction)}
        vector_to_parameters(start, params)
    return {"trpo/improvement": zero, "trpo/kl": zero, "trpo/step_fraction": zero}
