"""The PPO loss: TorchRL's clipped PPO on on-policy batches, its clip around the proximal
policy on lagged ones."""

import torch
from tensordict import TensorDict
from torchrl.objectives import ClipPPOLoss

from gail_lightning.networks import ActionSampler, RunningNorm, make_actor, make_critic
from gail_lightning.ppo import PPOLoss


def networks(seed: int = 0):
    torch.manual_seed(seed)
    norm = RunningNorm(4)
    actor = make_actor(norm, 4, [-1.0, -2.0], [1.0, 2.0], [32, 32], init_log_std=-0.5)
    return actor, make_critic(norm, 4, [32, 32])


def batch_of(actor, size: int = 512) -> TensorDict:
    batch = TensorDict({"observation": torch.randn(size, 4) * 2}, [size])
    with torch.no_grad():
        ActionSampler(actor)(batch)
    batch["advantage"] = torch.randn(size, 1)
    batch["value_target"] = torch.randn(size, 1)
    return batch


def test_on_policy_loss_and_gradients_equal_torchrls_clipped_ppo():
    actor, critic = networks()
    batch = batch_of(actor)
    batch["proximal_log_prob"] = batch["action_log_prob"]
    with torch.no_grad():  # one policy step away from the batch's, so the clip is active
        for p in actor.parameters():
            p.add_(0.1 * torch.randn_like(p))
    kwargs = dict(clip_epsilon=0.2, entropy_coeff=0.01, critic_coeff=0.5)
    ours = PPOLoss(actor, critic, **kwargs)
    theirs = ClipPPOLoss(actor, critic, **kwargs, loss_critic_type="l2", normalize_advantage=True,
                         functional=False, log_explained_variance=False)
    results = []
    for loss in (ours, theirs):
        actor.zero_grad(), critic.zero_grad()
        torch.manual_seed(1)  # the same draw for the one-sample entropy estimate
        out = loss(batch.clone())
        (out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]).backward()
        grads = [p.grad.clone() for p in [*actor.parameters(), *critic.parameters()]]
        keys = ("loss_objective", "loss_critic", "loss_entropy", "kl_approx", "clip_fraction")
        results.append(({k: out[k].detach() for k in keys}, grads))
    (ours_out, ours_grads), (their_out, their_grads) = results
    assert 0.05 < their_out["clip_fraction"] < 0.95  # both branches of the clip are exercised
    for key in ours_out:
        torch.testing.assert_close(ours_out[key], their_out[key], rtol=1e-4, atol=1e-6, msg=key)
    for a, b in zip(ours_grads, their_grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-6)


def proximal_setup():
    """Networks, their loss without entropy, a batch whose proximal log-probs are the
    current policy's, and a function rescoring the batch's actions under the policy."""
    actor, critic = networks()
    loss = PPOLoss(actor, critic, clip_epsilon=0.2, entropy_coeff=0.0, critic_coeff=0.5)
    batch = batch_of(actor)

    def log_prob():
        return loss.policy.log_prob(batch["action"], *loss.policy(batch["observation"]))

    with torch.no_grad():
        batch["proximal_log_prob"] = log_prob()
    return actor, loss, batch, log_prob


def test_clip_acts_around_the_proximal_policy_and_the_surrogate_is_reweighted():
    """On a lagged batch the policy at the start of the update (proximal) may already be
    outside the clip range of the collecting one; its gradient must still be the unclipped
    one, weighted by π_proximal / π_behaviour."""
    actor, loss, batch, log_prob = proximal_setup()
    # the collecting policy gave each action half or twice its probability now: ratios 2, 0.5
    weight = torch.where(torch.arange(512) % 2 == 0, 2.0, 0.5)
    batch["action_log_prob"] = batch["proximal_log_prob"] - weight.log()
    actor.zero_grad()
    loss(batch)["loss_objective"].backward()
    lagged = [p.grad.clone() for p in actor.parameters()]

    advantage = batch["advantage"].squeeze(-1)
    advantage = (advantage - advantage.mean()) / advantage.std()
    actor.zero_grad()
    (-(weight * advantage * (log_prob() - batch["proximal_log_prob"]).exp()).mean()).backward()
    for got, expected in zip(lagged, [p.grad for p in actor.parameters()]):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)


def test_log_probs_of_saturated_actions_hold_under_bf16_autocast():
    """Under bf16-mixed the networks' outputs are bfloat16; the squash's bound must stay
    float32's, or every action past 0.99 of its range is rescored as if clamped there."""
    torch.manual_seed(0)
    actor = make_actor(RunningNorm(4), 4, [-1.0, -2.0], [1.0, 2.0], [32, 32], init_log_std=1.0)
    batch = batch_of(actor, 4096)
    saturated = (batch["action"].abs() > 0.995 * torch.tensor([1.0, 2.0])).any(-1)
    assert saturated.sum() > 100
    loss = PPOLoss(actor, make_critic(RunningNorm(4), 4, [8]), 0.2, 0.0, 0.5)
    with torch.no_grad():
        exact = loss.policy.log_prob(batch["action"], *loss.policy(batch["observation"]))
        with torch.autocast("cpu", torch.bfloat16):
            mixed = loss.policy.log_prob(batch["action"], *loss.policy(batch["observation"]))
    torch.testing.assert_close(mixed[saturated], exact[saturated], atol=0.05, rtol=0.01)


def test_once_the_policy_moves_the_clip_bounds_its_ratio_to_the_proximal_policy():
    """After some steps, π/π_proximal leaves [1 − ε, 1 + ε] on part of the batch: those
    samples stop pushing further, whatever their ratio to the collecting policy; and the
    weight π_proximal/π_behaviour is capped at ``MAX_IMPORTANCE_WEIGHT``."""
    from gail_lightning.ppo import MAX_IMPORTANCE_WEIGHT

    actor, loss, batch, log_prob = proximal_setup()
    with torch.no_grad():
        weight = torch.linspace(0.5, 300.0, 512)  # some above the cap
        batch["action_log_prob"] = batch["proximal_log_prob"] - weight.log()
        for p in actor.parameters():  # the policy moves away from the proximal one
            p.add_(0.1 * torch.randn_like(p))
    actor.zero_grad()
    loss(batch)["loss_objective"].backward()
    got = [p.grad.clone() for p in actor.parameters()]

    advantage = batch["advantage"].squeeze(-1)
    advantage = (advantage - advantage.mean()) / advantage.std()
    ratio = (log_prob() - batch["proximal_log_prob"]).exp()
    assert ((ratio < 0.8) | (ratio > 1.2)).float().mean() > 0.1, "the clip is not active"
    gain = torch.minimum(ratio * advantage, ratio.clamp(0.8, 1.2) * advantage)
    actor.zero_grad()
    (-(weight.clamp(max=MAX_IMPORTANCE_WEIGHT) * gain).mean()).backward()
    for g, expected in zip(got, [p.grad for p in actor.parameters()]):
        torch.testing.assert_close(g, expected, rtol=1e-4, atol=1e-6)
