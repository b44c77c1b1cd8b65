import math

import pytest
import torch

from gail_lightning.discriminator import (
    Discriminator,
    discriminator_loss,
    gradient_penalty,
    learned_reward,
)
from gail_lightning.networks import RunningNorm


def test_loss_at_chance_is_two_log_two():
    zeros = torch.zeros(8, 1)
    assert discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))


def test_loss_small_when_classifier_right_and_large_when_wrong():
    confident = torch.full((8, 1), 10.0)
    right = discriminator_loss(confident, -confident).item()
    wrong = discriminator_loss(-confident, confident).item()
    assert right < 1e-3
    assert wrong == pytest.approx(2 * 10.0, rel=1e-3)


def test_loss_matches_bce_on_probabilities():
    expert, policy = torch.tensor([[0.5], [2.0]]), torch.tensor([[-1.0], [0.3]])
    d_e, d_p = torch.sigmoid(expert), torch.sigmoid(policy)
    expected = -torch.log(d_e).mean() - torch.log(1 - d_p).mean()
    assert discriminator_loss(expert, policy).item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("kind", ["survival", "logit"])
def test_reward_is_monotone_in_d(kind):
    logits = torch.linspace(-8, 8, 101)
    reward = learned_reward(logits, kind)
    assert (reward.diff() > 0).all()


def test_survival_reward_is_minus_log_one_minus_d():
    logits = torch.tensor([-2.0, 0.0, 3.0])
    d = torch.sigmoid(logits)
    assert torch.allclose(learned_reward(logits, "survival"), -torch.log(1 - d), atol=1e-5)
    assert (learned_reward(logits, "survival") > 0).all()


def test_unknown_reward_kind_raises():
    with pytest.raises(ValueError, match="survival"):
        learned_reward(torch.zeros(1), "env")


def test_discriminator_reads_normalized_observations():
    norm = RunningNorm(3)
    disc = Discriminator(norm, 3, 2, [16, 16])
    obs, act = torch.randn(5, 3) * 5 + 2, torch.randn(5, 2)
    before = disc(obs, act)
    norm.update(torch.randn(1000, 3) * 5 + 2)
    after = disc(obs, act)
    assert before.shape == (5, 1)
    assert not torch.allclose(before, after)


def test_gradient_penalty_is_differentiable():
    disc = Discriminator(RunningNorm(3), 3, 2, [16, 16])
    expert = disc.inputs(torch.randn(8, 3), torch.randn(8, 2))
    policy = disc.inputs(torch.randn(8, 3), torch.randn(8, 2))
    penalty = gradient_penalty(disc, expert, policy)
    penalty.backward()
    weights = [p for name, p in disc.net.named_parameters() if name.endswith("weight")]
    assert all(w.grad is not None and w.grad.abs().sum() > 0 for w in weights)


def test_gradient_penalty_of_a_linear_discriminator_is_its_slope_minus_one_squared():
    disc = Discriminator(RunningNorm(3), 3, 2, [16])
    disc.net = torch.nn.Linear(5, 1)
    with torch.no_grad():
        disc.net.weight.copy_(torch.tensor([[3.0, 0.0, 0.0, 4.0, 0.0]]))  # |grad D| = 5 everywhere
    expert, policy = disc.inputs(torch.randn(8, 3), torch.randn(8, 2)), disc.inputs(torch.randn(8, 3), torch.randn(8, 2))
    assert gradient_penalty(disc, expert, policy).item() == pytest.approx(16.0)


def test_gradient_penalty_does_not_depend_on_the_scale_of_observations():
    """The penalty acts on what D sees (normalized observations): rescaling a raw dimension,
    with statistics that follow it, changes nothing. On raw inputs a dimension with a small
    spread would dominate it."""
    torch.manual_seed(0)
    disc = Discriminator(RunningNorm(3), 3, 2, [16, 16])
    data, actions = torch.randn(256, 3) * 2 + 1, torch.randn(256, 2)
    penalties = []
    for factor in (torch.ones(3), torch.tensor([0.01, 1.0, 100.0])):
        disc.obs_norm = RunningNorm(3)
        disc.obs_norm.update(data * factor)
        torch.manual_seed(1)  # the same interpolation weights
        expert = disc.inputs(data[:128] * factor, actions[:128])
        penalty = gradient_penalty(disc, expert, disc.inputs(data[128:] * factor, actions[128:]))
        penalties.append(penalty.item())
    assert penalties[0] == pytest.approx(penalties[1], rel=1e-4)


def test_the_absorbing_pair_is_one_point_whatever_observation_and_action_it_carries():
    torch.manual_seed(0)
    disc = Discriminator(RunningNorm(3), 3, 2, [16, 16], absorbing=True)
    disc.obs_norm.update(torch.randn(100, 3) * 3 + 1)
    obs, act = torch.randn(6, 3), torch.randn(6, 2)
    absorbing = disc(obs, act, torch.ones(6, 1))
    torch.testing.assert_close(absorbing, disc.absorbing_logit().expand(6, 1))
    live = disc(obs, act)  # the flag defaults to 0: live states, which differ
    torch.testing.assert_close(live, disc(obs, act, torch.zeros(6, 1)))
    assert live.unique().numel() == 6 and not torch.isclose(live, absorbing).any()


@pytest.mark.parametrize("absorbing", [False, True])
def test_airl_shaping_is_gamma_h_next_minus_h_with_terminal_and_absorbing_states(absorbing):
    """h after a termination: 0, or the absorbing state's; an absorbing pair: γ·h(abs) − h(abs)."""
    disc = Discriminator(RunningNorm(3), 3, 2, [8], absorbing=absorbing, shaping_gamma=0.9)
    disc.potential = torch.nn.Linear(3 + absorbing, 1)  # identity normalization: h is linear in s
    with torch.no_grad():
        disc.potential.weight.copy_(torch.tensor([[1.0, 2.0, -1.0, 5.0][:3 + absorbing]]))
        disc.potential.bias.fill_(0.5)
    obs, nxt = torch.tensor([[1.0, 0.0, 0.0]] * 3), torch.tensor([[0.0, 1.0, 0.0]] * 3)
    terminated = torch.tensor([[False], [True], [False]])
    h_abs = 5.5 if absorbing else 0.0
    expected = torch.tensor([[0.9 * 2.5 - 1.5], [0.9 * h_abs - 1.5], [0.9 * h_abs - h_abs]])
    flags = torch.tensor([[0.0], [0.0], [1.0]]) if absorbing else None
    shaping = disc.shaping(obs, nxt, terminated, flags)
    torch.testing.assert_close(shaping if absorbing else shaping[:2], expected if absorbing else expected[:2])
    if absorbing:
        g_abs = disc(torch.zeros(1, 3), torch.zeros(1, 2), torch.ones(1, 1))[0]
        torch.testing.assert_close(disc.absorbing_logit(), g_abs + 0.9 * h_abs - h_abs)
