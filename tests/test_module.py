import copy

import lightning as L
import pytest
import torch
from conftest import ENV_ID, SMALL_DISC, SMALL_PPO, build, deterministic_actions, fit
from tensordict import TensorDict
from torchrl.collectors import Collector

from gail_lightning.data import CollectorDataModule
from gail_lightning.discriminator import learned_reward
from gail_lightning.envs import make_env
from gail_lightning.errors import UserInputError
from gail_lightning.module import GAILModule
from gail_lightning.settings import (
    DiscriminatorSettings,
    PPOSettings,
    TRPOSettings,
)


def test_fit_counts_frames_and_updates_all_networks(demo_file, tmp_path):
    torch.manual_seed(0)
    module, data = build(demo_file)
    before = copy.deepcopy(module.state_dict())
    fit(module, data, tmp_path)
    assert int(module.frames) == 512
    after = module.state_dict()
    for prefix in ("actor.", "critic.", "discriminator.net."):
        changed = [k for k in after if k.startswith(prefix) and not torch.equal(after[k], before[k])]
        assert changed, f"no {prefix} parameter changed"
    assert module.obs_norm.count.item() == 512


def test_networks_share_one_observation_normalizer(demo_file):
    module, _ = build(demo_file)
    assert module.discriminator.obs_norm is module.obs_norm
    assert module.actor.module[0].module[0] is module.obs_norm
    assert module.critic.module[0] is module.obs_norm


def test_checkpoint_round_trip_gives_identical_actions_and_norm_stats(demo_file, tmp_path):
    torch.manual_seed(0)
    module, data = build(demo_file)
    trainer = fit(module, data, tmp_path)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    restored = GAILModule.load_from_checkpoint(path)
    obs = torch.randn(32, data.obs_dim)
    torch.testing.assert_close(
        deterministic_actions(restored.actor, obs), deterministic_actions(module.actor, obs),
        rtol=0, atol=0,
    )
    for name in ("mean", "var", "count"):
        assert torch.equal(getattr(restored.obs_norm, name), getattr(module.obs_norm, name))
    assert module.obs_norm.count.item() > 0
    assert int(restored.frames) == 512
    assert torch.load(path, weights_only=False)["versions"]["torchrl"] != "not installed"


def test_gail_reward_needs_demonstrations(tmp_path):
    data = CollectorDataModule(env_id=ENV_ID, frames_per_batch=256, total_frames=256)
    module = GAILModule(data.obs_dim, data.action_low, data.action_high)
    with pytest.raises(UserInputError, match="--data.demos"):
        fit(module, data, tmp_path)


def test_minibatch_must_divide_the_batch(demo_file, tmp_path):
    module, data = build(demo_file, ppo=PPOSettings(minibatch_size=100))
    with pytest.raises(UserInputError, match="not divisible"):
        fit(module, data, tmp_path)


@pytest.mark.parametrize("group", ["ppo", "disc", "bc"])
@pytest.mark.parametrize("value", [0.0, -1e-3])
def test_non_positive_learning_rates_are_refused(group, value):
    with pytest.raises(UserInputError, match=rf"--model\.{group}\.lr must be > 0"):
        GAILModule(4, [-3.0], [3.0], **{group: {"lr": value}})


def test_the_env_reward_is_refused_with_the_module_that_trains_on_it():
    with pytest.raises(UserInputError, match="use --model gail_lightning.PPOModule"):
        GAILModule(4, [-3.0], [3.0], reward="env")


def test_a_negative_number_of_discriminator_steps_is_refused():
    with pytest.raises(UserInputError, match=r"--model\.disc\.steps must be >= 0"):
        GAILModule(4, [-3.0], [3.0], disc=DiscriminatorSettings(steps=-1))


def test_without_discriminator_steps_d_never_moves_and_its_reward_times_the_scale_trains_the_policy(
        demo_file, tmp_path):
    """The survival-only control: D keeps its initial weights, and GAE reads D's reward (not
    the env's), times ``reward_scale``; the policy still trains."""
    torch.manual_seed(0)
    module, data = build(demo_file, disc=DiscriminatorSettings(steps=0), reward_scale=0.5)
    before = copy.deepcopy(module.state_dict())
    read, expected = [], []
    gae = module.gae.forward

    def recording_gae(batch):
        read.append(batch["next", "reward"].clone())
        with torch.no_grad():  # D's reward for these pairs, as the policy saw it
            expected.append(0.5 * learned_reward(module.discriminator(batch["observation"], batch["action"]), "survival"))
        return gae(batch)

    module.gae.forward = recording_gae
    trainer = fit(module, data, tmp_path)
    assert len(read) == 2
    for seen, want in zip(read, expected):
        torch.testing.assert_close(seen, want)
        assert not torch.allclose(seen, torch.ones_like(seen))  # InvertedPendulum's own reward
    after = module.state_dict()
    own = [k for k in after if k.startswith("discriminator.") and ".obs_norm." not in k]  # the norm is shared
    assert own and all(torch.equal(after[k], before[k]) for k in own)
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith("actor."))
    assert not trainer.optimizers[2].state


COLLECTION = {
    "serial": {"num_workers": 0, "overlap": False},
    "overlap": {"num_workers": 1, "overlap": True},
    "two workers": {"num_workers": 2, "overlap": True},
}


@pytest.mark.parametrize("collection", COLLECTION)
def test_same_seed_gives_identical_training(demo_file, tmp_path, collection):
    weights = []
    for run in range(2):
        L.seed_everything(3)
        module, data = build(demo_file, {**COLLECTION[collection], "total_frames": 1024})
        fit(module, data, tmp_path / str(run))
        weights.append(module.state_dict())
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key


class RecordingModule(GAILModule):
    """Keeps every batch, the actor weights current when it was handed over, and the
    proximal log-probs its PPO step used."""

    def training_step(self, dataloader_iter):
        batch = self.next_batch(dataloader_iter)
        self.seen.append((batch.clone(), copy.deepcopy(self.actor.state_dict())))
        super().training_step(iter([(batch, 0, 0)]))

    def _proximal_log_prob(self, batch):
        metrics = super()._proximal_log_prob(batch)
        self.proximal.append(batch["proximal_log_prob"].clone())
        return metrics


def log_prob_gap(actor, weights, batch, key="action_log_prob") -> float:
    """How far ``batch``'s log-probs under ``key`` are from those of ``actor`` holding ``weights``."""
    actor = copy.deepcopy(actor)
    actor.load_state_dict(weights)
    with torch.no_grad():
        current = actor.get_dist(batch.clone()).log_prob(batch["action"])
    return (current - batch[key]).abs().max().item()


@pytest.mark.parametrize("collection", COLLECTION)
def test_policy_lag_is_none_or_exactly_one_update(demo_file, tmp_path, collection):
    """Serial: every batch by the weights it is trained with. Overlapped: batch k by the
    weights that batch k-1 was trained with (the first two by the initial ones), whatever
    the timing."""
    torch.manual_seed(0)
    _, data = build(demo_file, {**COLLECTION[collection], "total_frames": 1024})
    module = RecordingModule(data.obs_dim, data.action_low, data.action_high, ppo=SMALL_PPO, disc=SMALL_DISC)
    module.seen, module.proximal = [], []
    fit(module, data, tmp_path)
    assert len(module.seen) == 4
    lag = 1 if data.hparams.overlap else 0
    for k, (batch, weights) in enumerate(module.seen):
        collected_by = module.seen[max(0, k - lag)][1]
        assert log_prob_gap(module.actor, collected_by, batch) < 1e-4, k
        if k > 0 and lag:
            assert log_prob_gap(module.actor, weights, batch) > 1e-3, k
        # PPO's proximal policy is the one the update starts from, not the collecting one
        batch["proximal_log_prob"] = module.proximal[k].reshape(batch.shape)
        assert log_prob_gap(module.actor, weights, batch, "proximal_log_prob") < 1e-4, k


def test_fit_with_the_trpo_policy_optimizer(demo_file, tmp_path):
    torch.manual_seed(0)
    module, data = build(demo_file, policy_optimizer="trpo", trpo=TRPOSettings(max_kl=0.01))
    before = copy.deepcopy(module.state_dict())
    trainer = fit(module, data, tmp_path)
    after = module.state_dict()
    for prefix in ("actor.", "critic.", "discriminator.net."):
        assert any(k.startswith(prefix) and not torch.equal(after[k], before[k]) for k in after), prefix
    actor_opt = trainer.optimizers[0]
    assert not actor_opt.state, "TRPO moves the policy itself; its Adam must stay unused"
    assert 0 < trainer.callback_metrics["trpo/kl"] <= 0.01


def test_compiled_ppo_loss_matches_eager_and_keeps_checkpoint_keys(demo_file):
    torch.manual_seed(0)
    eager, data = build(demo_file)
    compiled, _ = build(demo_file, compile_loss=True)
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    compiled.load_state_dict(eager.state_dict())
    collector = Collector(make_env(ENV_ID, seed=1), eager.actor, frames_per_batch=64, total_frames=64)
    batch = next(iter(collector))
    with torch.no_grad():
        eager.gae(batch)
    eager._proximal_log_prob(batch)
    for module in (eager, compiled):
        out = module.ppo_loss(batch.clone())
        (out["loss_objective"] + out["loss_critic"]).backward()
    for (name, a), b in zip(eager.named_parameters(), compiled.parameters()):
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_rewards_are_ds_and_terminated_steps_only_gain_the_absorbing_states_return(demo_file):
    """The env reward is replaced (never reaches GAE); a terminal step, not a truncated one,
    gains γ·r_abs/(1−γ)."""
    module, _ = build(demo_file, reward="logit", absorbing=True, gamma=0.9)
    terminated = torch.tensor([[False, True, False, False]]).unsqueeze(-1)
    truncated = torch.tensor([[False, False, False, True]]).unsqueeze(-1)
    batch = TensorDict({"observation": torch.randn(1, 4, 4), "action": torch.rand(1, 4, 1) - 0.5,
                        "next": {"reward": torch.full((1, 4, 1), 100.0), "terminated": terminated,
                                 "truncated": truncated}}, [1, 4])
    metrics = module.relabel_rewards(batch)
    with torch.no_grad():
        expected = module.discriminator(batch["observation"], batch["action"])  # the logit reward
        r_abs = module.discriminator.absorbing_logit().item()
    assert metrics["reward/absorbing"].item() == pytest.approx(r_abs)
    expected[0, 1] += 0.9 * r_abs / (1 - 0.9)
    torch.testing.assert_close(batch["next", "reward"], expected)


def test_discriminator_step_learns_who_is_expert_and_that_the_expert_never_ends_early(demo_file, tmp_path):
    """Separable data: D's logits rise on expert pairs and fall on the policy's; the policy's
    episodes end (one absorbing pair per 5 steps) and the expert's never do, so D learns the
    absorbing state is the policy's."""
    torch.manual_seed(0)
    module, data = build(demo_file, reward="logit", absorbing=True, disc=DiscriminatorSettings(lr=3e-3, steps=2, batch_size=64))
    fit(module, data, tmp_path)  # attaches a trainer and optimizers
    module.expert = TensorDict({"observation": torch.randn(512, 4) + 2, "action": torch.rand(512, 1) - 0.5}, [512])
    module.expert_absorbing_rate = 0.0
    policy = TensorDict({"observation": torch.randn(512, 4) - 2, "action": torch.rand(512, 1) - 0.5,
                         "next": {"terminated": (torch.arange(512) % 5 == 4).unsqueeze(-1)}}, [512])
    before = module.discriminator.absorbing_logit().item()
    for _ in range(30):
        metrics = module.discriminator_step(policy)
    with torch.no_grad():
        expert_logits = module.discriminator(module.expert["observation"], module.expert["action"])
        policy_logits = module.discriminator(policy["observation"], policy["action"])
    assert expert_logits.min() > 0 > policy_logits.max()
    assert metrics["disc/expert_accuracy"] == 1 and metrics["disc/policy_accuracy"] > 0.7
    assert module.discriminator.absorbing_logit().item() < min(before, 0) - 1


def test_airl_logit_is_f_minus_the_current_policys_log_prob(demo_file):
    """Expert pairs get log π from the current policy, batch pairs carry it (proximal_log_prob)."""
    torch.manual_seed(0)
    module, _ = build(demo_file, reward="airl", gamma=0.9)
    disc, policy = module.discriminator, module.ppo_loss.policy
    pairs = TensorDict({"observation": torch.randn(8, 4), "action": torch.rand(8, 1) - 0.5,
                        "next": {"observation": torch.randn(8, 4), "terminated": torch.arange(8).unsqueeze(-1) % 3 == 0}}, [8])
    with torch.no_grad():
        log_prob = policy.log_prob(pairs["action"], *policy(pairs["observation"])).unsqueeze(-1)
        h = disc.potential_of
        f = (disc(pairs["observation"], pairs["action"])
             + 0.9 * h(pairs["next", "observation"]) * ~pairs["next", "terminated"] - h(pairs["observation"]))
        expert_logits, _ = module._discriminator_logits(pairs, None)
        pairs["proximal_log_prob"] = torch.full((8,), -3.0)
        batch_logits, _ = module._discriminator_logits(pairs, None)
    torch.testing.assert_close(expert_logits, f - log_prob)
    torch.testing.assert_close(batch_logits, f + 3.0)


def test_airl_absorbing_pairs_score_as_the_absorbing_state_whatever_their_log_prob(demo_file):
    module, _ = build(demo_file, reward="airl", absorbing=True, gamma=0.9)
    pairs = TensorDict({"observation": torch.randn(4, 4), "action": torch.rand(4, 1) - 0.5,
                        "proximal_log_prob": torch.tensor([-3.0, -1.0, 2.0, 0.5]),
                        "next": {"observation": torch.randn(4, 4), "terminated": torch.zeros(4, 1, dtype=torch.bool)}}, [4])
    with torch.no_grad():
        logits, _ = module._discriminator_logits(pairs, torch.ones(4, 1))
        torch.testing.assert_close(logits, module.discriminator.absorbing_logit().expand(4, 1))


def test_airl_with_absorbing_states_trains_both_of_its_networks(demo_file, tmp_path):
    torch.manual_seed(0)
    module, data = build(demo_file, reward="airl", absorbing=True, disc=DiscriminatorSettings(steps=2, batch_size=64, grad_penalty=1.0))
    before = copy.deepcopy(module.discriminator.state_dict())
    fit(module, data, tmp_path)
    after = module.discriminator.state_dict()
    for prefix in ("net.", "potential."):
        assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith(prefix)), prefix
