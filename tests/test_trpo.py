"""TRPO's pieces on their own: conjugate gradient, and one step on a fixed batch."""

import torch
from tensordict import TensorDict
from torch.distributions import Normal, kl_divergence

from gail_lightning.networks import RunningNorm, make_actor
from gail_lightning.trpo import _gaussian, conjugate_gradient, trpo_step


def test_conjugate_gradient_solves_a_small_spd_system():
    torch.manual_seed(0)
    m = torch.randn(6, 6, dtype=torch.float64)
    a = m @ m.T + 6 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=6)
    torch.testing.assert_close(x, torch.linalg.solve(a, b))


def fixed_batch(seed: int = 0):
    torch.manual_seed(seed)
    actor = make_actor(RunningNorm(4), 4, [-1.0, -1.0], [1.0, 1.0], (32, 32))
    obs = torch.randn(512, 4)
    with torch.no_grad():
        action = actor(TensorDict({"observation": obs}, [512]))["action"]
    # Advantages that reward the first action coordinate: a clear direction to improve in.
    advantage = action[:, 0] - action[:, 0].mean()
    return actor, TensorDict({"observation": obs, "action": action}, [512]), advantage


def surrogate(actor, batch, old_log_prob, advantage):
    with torch.no_grad():
        log_prob = actor.get_dist(batch.clone()).log_prob(batch["action"])
        return (torch.exp(log_prob - old_log_prob) * advantage).mean()


def test_trpo_step_improves_the_surrogate_within_the_kl_bound():
    actor, batch, advantage = fixed_batch()
    with torch.no_grad():
        old = _gaussian(actor, batch)
        old_log_prob = actor.get_dist(batch.clone()).log_prob(batch["action"])
    before = surrogate(actor, batch, old_log_prob, advantage)
    stats = trpo_step(actor, batch, advantage, max_kl=0.01)
    after = surrogate(actor, batch, old_log_prob, advantage)
    with torch.no_grad():
        kl = kl_divergence(Normal(old.loc, old.scale), _gaussian(actor, batch)).sum(-1).mean()
    assert stats["trpo/step_fraction"] > 0
    assert after > before and torch.isclose(after - before, stats["trpo/improvement"])
    assert 0 < kl <= 0.01 and torch.isclose(kl, stats["trpo/kl"])


def test_trpo_step_size_follows_max_kl():
    kls = []
    for max_kl in (0.001, 0.01):
        actor, batch, advantage = fixed_batch()
        kls.append(trpo_step(actor, batch, advantage, max_kl=max_kl)["trpo/kl"])
    assert kls[0] <= 0.001 < kls[1] <= 0.01


def test_trpo_step_with_no_improving_direction_leaves_the_policy_unchanged():
    actor, batch, _ = fixed_batch()
    before = [p.detach().clone() for p in actor.parameters()]
    stats = trpo_step(actor, batch, torch.zeros(512), max_kl=0.01)
    assert stats["trpo/step_fraction"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, actor.parameters()))
