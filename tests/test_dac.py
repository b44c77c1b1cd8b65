"""GAIL with the off-policy generator (DACModule): D's reward on replayed minibatches, D's
steps against replayed pairs, the control, the expert-fitted normalizer, and the config."""

import copy
from pathlib import Path

import pytest
import torch
from conftest import ENV_ID, fit, run
from tensordict import TensorDict

from gail_lightning.dac import DACModule
from gail_lightning.data import CollectorDataModule
from gail_lightning.discriminator import learned_reward
from gail_lightning.errors import UserInputError
from gail_lightning.sac import DiskReplayBuffer
from gail_lightning.settings import DiscriminatorSettings

SMALL = {"hidden_sizes": (32, 32), "batch_size": 32, "learning_starts": 256, "updates_per_frame": 0.25}


def dac_run(demo_file: Path, disc_steps: int = 3, **model_kwargs) -> tuple[DACModule, CollectorDataModule]:
    torch.manual_seed(0)
    data = CollectorDataModule(env_id=ENV_ID, demos=str(demo_file), frames_per_batch=128, total_frames=512,
                               num_envs=2, val_episodes=1)
    disc = DiscriminatorSettings(steps=disc_steps, batch_size=32, grad_penalty=10.0, hidden_sizes=(16, 16))
    module = DACModule(data.obs_dim, data.action_low, data.action_high, disc=disc, **{**SMALL, **model_kwargs})
    return module, data


def test_replayed_minibatches_carry_ds_reward_and_the_absorbing_value_at_terminations(tmp_path, demo_file):
    """The env reward in the buffer (100) never reaches SAC: each replayed transition pays
    D's logit, a terminated one also γ·r_abs/(1−γ), all times reward_scale."""
    module, _ = dac_run(demo_file, reward="logit", absorbing=True, reward_scale=2.0, gamma=0.9)
    module.buffer = DiskReplayBuffer(tmp_path / "buffer", 64, "test")
    terminated = (torch.arange(64) % 4 == 0).unsqueeze(-1)
    module.buffer.extend(TensorDict({
        "observation": torch.randn(64, 4), "action": torch.rand(64, 1) - 0.5,
        "next": {"observation": torch.randn(64, 4), "reward": torch.full((64, 1), 100.0),
                 "done": terminated, "terminated": terminated},
    }, [64]))
    batch = module.replayed()
    with torch.no_grad():
        r_abs = learned_reward(module.discriminator.absorbing_logit(), "logit")
        expected = module.discriminator(batch["observation"], batch["action"])
    expected = 2.0 * (expected + batch["next", "terminated"] * 0.9 * r_abs / (1 - 0.9))
    assert batch["next", "terminated"].any() and not batch["next", "terminated"].all()
    torch.testing.assert_close(batch["next", "reward"], expected)


def test_dac_steps_d_against_the_buffer_then_sac_on_ds_reward(tmp_path, demo_file):
    """Batches 2-4 find >= 256 frames in the buffer: 3 D steps against pairs drawn from the
    buffer, then 32 SAC updates on D's reward, each batch. The actor reads observations
    normalized by the expert's statistics, D by the buffer's; the checkpoint loads without
    unpickling code."""
    module, data = dac_run(demo_file)
    assert module.discriminator.net[0].out_features == 16  # disc.hidden_sizes, not the policy's 32
    d_inputs, sac_rewards = [], []
    step_d, losses = module.discriminator_step, module.losses
    module.discriminator_step = lambda flat: d_inputs.append(flat.clone()) or step_d(flat)
    module.losses = lambda batch: sac_rewards.append(batch["next", "reward"].clone()) or losses(batch)
    before = copy.deepcopy(module.state_dict())
    trainer = fit(module, data, tmp_path)
    after = module.state_dict()
    for prefix in ("actor.", "qvalue.", "discriminator.", "log_alpha"):
        assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith(prefix)), prefix
    *sac, disc = module.trainer.optimizers
    assert {int(s["step"]) for opt in sac for s in opt.state.values()} == {96}
    assert {int(s["step"]) for s in disc.state.values()} == {9}
    # D's negatives are the buffer's pairs; SAC never sees the env's reward (1 per step here).
    stored = module.buffer.buffer.storage[torch.arange(len(module.buffer))]["observation"]
    assert len(d_inputs) == 3 and all(len(flat) == 3 * 32 for flat in d_inputs)
    assert all((flat["observation"][:, None] == stored[None]).all(-1).any(-1).all() for flat in d_inputs)
    assert len(sac_rewards) == 96 and not any((reward == 1.0).any() for reward in sac_rewards)
    expert = data.expert["observation"].double()
    assert module.obs_norm.count == len(expert)
    torch.testing.assert_close(module.obs_norm.mean, expert.mean(0))
    # D's normalizer follows the pairs it is shown: the buffer's, 3 × 96 of them.
    assert module.discriminator.obs_norm is module.disc_norm and module.disc_norm.count == 3 * 96
    shown = torch.cat([flat["observation"] for flat in d_inputs]).double()
    torch.testing.assert_close(module.disc_norm.mean, shown.mean(0))
    trainer.save_checkpoint(tmp_path / "dac.ckpt")
    saved = torch.load(tmp_path / "dac.ckpt", weights_only=True)
    assert saved["hyper_parameters"]["disc"]["hidden_sizes"] == (16, 16)


def test_the_control_never_moves_d(tmp_path, demo_file):
    module, data = dac_run(demo_file, disc_steps=0)
    before = copy.deepcopy(module.discriminator.net.state_dict())
    fit(module, data, tmp_path)
    assert all(torch.equal(v, before[k]) for k, v in module.discriminator.net.state_dict().items())
    assert not module.trainer.optimizers[-1].state


def test_airl_and_missing_demos_are_refused(tmp_path, demo_file):
    with pytest.raises(UserInputError, match="AIRL"):
        dac_run(demo_file, reward="airl")
    module, _ = dac_run(demo_file)
    data = CollectorDataModule(env_id=ENV_ID, frames_per_batch=128, total_frames=512, num_envs=2)
    with pytest.raises(UserInputError, match="--data.demos"):
        fit(module, data, tmp_path)


def test_shipped_dac_config_trains_and_resumes_with_the_same_normalizer(tmp_path):
    common = ["fit", "--config", "configs/hopper_sac.yaml", "--data.frames_per_batch=256", "--data.num_envs=2",
              "--model.learning_starts=256", "--model.batch_size=32", "--model.updates_per_frame=0.125",
              "--model.disc.steps=2", "--eval.eval_every_frames=512", "--eval.episodes=1",
              "--data.val_episodes=1", f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false"]
    last = tmp_path / "checkpoints" / "last.ckpt"
    run(*common, "--data.total_frames=512")
    fitted = torch.load(last, weights_only=True)["state_dict"]["obs_norm.count"]
    run(*common, "--data.total_frames=1024", "--ckpt_path=last")
    checkpoint = torch.load(last, weights_only=True)
    assert int(checkpoint["state_dict"]["frames"]) == 1024
    assert checkpoint["state_dict"]["obs_norm.count"] == fitted > 0  # not fitted again on resume
    assert checkpoint["hyper_parameters"]["disc"]["hidden_sizes"] == [100, 100]
