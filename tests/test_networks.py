import math

import torch
from tensordict import TensorDict
from torchrl.envs.utils import ExplorationType, set_exploration_type

from gail_lightning.networks import ActionSampler, RunningNorm, make_actor, make_critic


def test_running_norm_matches_statistics_of_all_batches():
    data = torch.randn(1000, 4, dtype=torch.float64) * torch.tensor([1.0, 2.0, 5.0, 0.1]) + 3
    norm = RunningNorm(4)
    for chunk in data.split(137):
        norm.update(chunk)
    assert torch.allclose(norm.mean, data.mean(0))
    assert torch.allclose(norm.var, data.var(0, unbiased=False))
    out = norm(data.float())
    assert torch.allclose(out.mean(0), torch.zeros(4), atol=1e-4)
    assert torch.allclose(out.std(0), torch.ones(4), atol=1e-2)


def test_running_norm_clips():
    norm = RunningNorm(1, clip=5.0)
    assert norm(torch.tensor([[100.0]])).item() == 5.0


def test_actor_actions_inside_bounds_and_deterministic_mode():
    norm = RunningNorm(3)
    actor = make_actor(norm, 3, [-0.4, -1.0], [0.4, 1.0], [32, 32])
    td = TensorDict({"observation": torch.randn(256, 3) * 10}, batch_size=[256])
    actor(td)
    high = torch.tensor([0.4, 1.0])
    assert td["action"].shape == (256, 2)
    assert (td["action"].abs() <= high).all()
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        a1 = actor(td.select("observation"))["action"]
        a2 = actor(td.select("observation"))["action"]
    assert torch.equal(a1, a2)


def test_actor_starts_at_the_requested_std():
    td = TensorDict({"observation": torch.randn(5, 3)}, batch_size=[5])
    for log_std in (0.0, -1.0):
        actor = make_actor(RunningNorm(3), 3, [-1.0], [1.0], [32, 32], init_log_std=log_std)
        scale = actor(td.clone())["scale"]
        assert torch.allclose(scale, torch.full((5, 1), math.exp(log_std)))


def test_critic_shape():
    critic = make_critic(RunningNorm(3), 3, [32, 32])
    td = critic(TensorDict({"observation": torch.randn(7, 3)}, batch_size=[7]))
    assert td["state_value"].shape == (7, 1)


def test_action_sampler_draws_the_actors_distribution_and_its_log_probs():
    """Collection samples in plain torch; TRPO and the reference ``TanhNormal`` rescore
    with the actor. The stored log-prob must be the actor's for the same action, saturated
    ones too."""
    torch.manual_seed(0)
    actor = make_actor(RunningNorm(5), 5, [-1.0, -2.0, -0.5], [1.0, 2.0, 0.4], [16], init_log_std=1.0)
    obs = TensorDict({"observation": torch.randn(20_000, 5) * 3}, [20_000])
    with torch.no_grad():
        drawn = ActionSampler(actor)(obs.clone())
        rescored = actor.get_dist(drawn.select("observation")).log_prob(drawn["action"])
        reference = actor(obs.clone())
    assert (drawn["action"].abs() > 0.999 * torch.tensor([1.0, 2.0, 0.5])).any(), "no saturated action drawn"
    torch.testing.assert_close(drawn["action_log_prob"], rescored, atol=1e-4, rtol=0)
    torch.testing.assert_close(drawn["action"].mean(0), reference["action"].mean(0), atol=0.03, rtol=0)
    torch.testing.assert_close(drawn["action"].std(0), reference["action"].std(0), atol=0.03, rtol=0)


def test_the_value_head_computes_in_float32_under_bf16_autocast():
    """In bf16, values near 100 are 0.5 apart: as coarse as one step's GAIL reward."""
    torch.manual_seed(0)
    critic = make_critic(RunningNorm(3), 3, [16])
    with torch.no_grad():
        critic.module[1][-1].bias.fill_(100.0)
    obs = torch.randn(64, 3)
    with torch.no_grad():
        full = critic.module(obs)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = critic.module(obs)
    assert mixed.dtype == torch.float32
    assert (mixed - full).abs().max() < 0.1 and mixed.unique().numel() == 64
