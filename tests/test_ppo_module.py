"""The generator on its own: PPO on the env reward, and experts written before it existed."""

import subprocess
import sys
from pathlib import Path

import torch
from conftest import ENV_ID, fit
from torchrl.collectors import Collector

from gail_lightning.data import CollectorDataModule
from gail_lightning.demos import load_expert
from gail_lightning.envs import make_env
from gail_lightning.ppo_module import PPOModule
from gail_lightning.settings import PPOSettings

ROOT = Path(__file__).resolve().parents[1]


def build(**model_kwargs) -> tuple[PPOModule, CollectorDataModule]:
    data = CollectorDataModule(env_id=ENV_ID, frames_per_batch=256, total_frames=512, num_envs=2, val_episodes=1)
    module = PPOModule(data.obs_dim, data.action_low, data.action_high, **model_kwargs)
    return module, data


def test_ppo_step_starts_at_ratio_1_and_moves_the_policy_towards_positive_advantages(tmp_path):
    """Checked without the loss's own arithmetic, so a sign error in it cannot cancel out:
    the first minibatch has ratio 1 even for saturated actions (std e^1 saturates the tanh),
    then actions with positive advantage gain log-probability, negative ones lose it, and
    the critic moves towards its targets."""
    torch.manual_seed(0)
    module, data = build(init_log_std=1.0, ppo=PPOSettings(lr=1e-3, epochs=4, minibatch_size=64))
    fit(module, data, tmp_path)  # attaches a trainer and optimizers
    collector = Collector(make_env(ENV_ID, seed=1), module.actor, frames_per_batch=256, total_frames=256)
    batch = next(iter(collector))
    with torch.no_grad():
        module.gae(batch)
    module._proximal_log_prob(batch)
    batch = batch.reshape(-1)
    assert (batch["action"].abs() > 0.999).any()  # saturated actions are in the batch
    with torch.no_grad():
        first = module.ppo_loss(batch)
    assert first["kl_approx"].abs() < 1e-6 and first["clip_fraction"] == 0

    def critic_error():
        with torch.no_grad():
            return (module.critic(batch.select("observation"))["state_value"] - batch["value_target"]).pow(2).mean()

    before_error = critic_error()
    actor_opt, critic_opt = module.optimizers()
    module._ppo_step(batch, actor_opt, critic_opt)
    gain = module._current_log_prob(batch) - batch["proximal_log_prob"]
    advantage = batch["advantage"].squeeze(-1)
    assert (advantage * gain).mean() > 0
    assert gain[advantage > 0].mean() > gain[advantage < 0].mean()
    assert critic_error() < before_error


class RewardRecorder(PPOModule):
    """Keeps each batch's reward as collected and as GAE reads it."""

    def relabel_rewards(self, batch):
        self.collected.append(batch["next", "reward"].clone())
        return super().relabel_rewards(batch)


def test_gae_reads_the_env_reward_times_its_scale(tmp_path):
    torch.manual_seed(0)
    data = CollectorDataModule(env_id=ENV_ID, frames_per_batch=256, total_frames=512, num_envs=2, val_episodes=1)
    module = RewardRecorder(data.obs_dim, data.action_low, data.action_high, reward_scale=0.1,
                            ppo=PPOSettings(epochs=1, minibatch_size=64))
    module.collected, read = [], []
    gae = module.gae.forward
    module.gae.forward = lambda batch: (read.append(batch["next", "reward"].clone()), gae(batch))[1]
    fit(module, data, tmp_path)
    assert len(read) == len(module.collected) == 2
    for collected, seen in zip(module.collected, read):
        assert collected.sum() > 0
        torch.testing.assert_close(seen, 0.1 * collected)


def test_experts_written_by_gail_with_the_env_reward_load_as_ppo_modules():
    """experts/hopper.ckpt: a GAILModule with ``reward: env`` and flat settings (2026-11)."""
    path = ROOT / "experts" / "hopper.ckpt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    module = load_expert(path, checkpoint)
    assert type(module) is PPOModule
    assert module.ppo.minibatch_size == checkpoint["hyper_parameters"]["minibatch_size"]
    state = module.state_dict()
    for key, value in checkpoint["state_dict"].items():
        if key.startswith(("actor.", "obs_norm.")):
            assert torch.equal(state[key], value), key


def resume(ckpt: Path | None, config: str, tmp_path: Path, frames: int) -> subprocess.CompletedProcess:
    """Fit ``config`` for ``frames`` frames in all, from ``ckpt`` if given."""
    return subprocess.run(
        [sys.executable, "train.py", "fit", "--config", config, *([f"--ckpt_path={ckpt}"] if ckpt else []),
         f"--data.total_frames={frames}", "--data.frames_per_batch=1024", "--model.ppo.minibatch_size=256",
         "--eval.episodes=1", "--data.val_episodes=1",
         f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )


def test_an_expert_run_from_before_ppo_module_resumes_with_its_new_config(tmp_path):
    """A PPO expert run written as a GAILModule with ``reward: env`` (flat settings, an unused
    discriminator and its optimizer's state, unfused Adam) resumes as a PPOModule, leaving
    those behind, with fused Adam."""
    config = "configs/experts/inverted_pendulum.yaml"
    assert resume(None, config, tmp_path / "new", 2048).returncode == 0
    checkpoint = torch.load(tmp_path / "new" / "checkpoints" / "last.ckpt", weights_only=True)
    hparams = checkpoint["hyper_parameters"]
    old = {key: value for key, value in hparams.items() if key not in ("_class_path", "ppo", "trpo")}
    old |= {"_class_path": "gail_lightning.GAILModule", "reward": "env", "disc_lr": 3e-4,
            "policy_lr": hparams["ppo"]["lr"], "ppo_epochs": hparams["ppo"]["epochs"],
            "minibatch_size": hparams["ppo"]["minibatch_size"]}
    disc = torch.nn.Linear(4, 1)
    checkpoint["hyper_parameters"] = old
    checkpoint["state_dict"] |= {"discriminator.net.0.weight": disc.weight.detach(),
                                 "discriminator.net.0.bias": disc.bias.detach()}
    checkpoint["optimizer_states"].append(torch.optim.Adam(disc.parameters()).state_dict())
    for saved in checkpoint["optimizer_states"]:  # as saved before fused Adam (2026-12-03)
        for group in saved["param_groups"]:
            group["fused"] = None
    torch.save(checkpoint, tmp_path / "old.ckpt")
    proc = resume(tmp_path / "old.ckpt", config, tmp_path / "resumed", 4096)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(resumed["state_dict"]["frames"]) == 4096
    assert resumed["hyper_parameters"]["_class_path"] == "gail_lightning.PPOModule"
    assert resumed["hyper_parameters"]["ppo"] == hparams["ppo"]
    assert not any(k.startswith("discriminator.") for k in resumed["state_dict"])
    assert all(group["fused"] for saved in resumed["optimizer_states"] for group in saved["param_groups"])


def test_an_expert_whose_optimizers_predate_today_s_is_refused_in_one_line(tmp_path):
    """experts/inverted_pendulum.ckpt: policy and value network shared one Adam then."""
    ckpt = ROOT / "experts" / "inverted_pendulum.ckpt"
    proc = resume(ckpt, "configs/experts/inverted_pendulum.yaml", tmp_path, 200_000)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {ckpt} holds the optimizers of an older version of this project, which cannot resume "
        "training; start afresh (its policy still evaluates and records demos)."
    )
