"""The SAC expert trainer: updates, target networks, checkpoints, and recording demos."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import fit

from gail_lightning.data import CollectorDataModule
from gail_lightning.demonstrations import load_demonstrations
from gail_lightning.demos import load_expert
from gail_lightning.errors import UserInputError
from gail_lightning.sac import SACModule

ROOT = Path(__file__).resolve().parents[1]


def fit_sac(tmp_path: Path, **model_kwargs) -> tuple[SACModule, dict]:
    torch.manual_seed(0)
    data = CollectorDataModule(env_id="InvertedPendulum-v5", frames_per_batch=128,
                               total_frames=512, num_envs=2, val_episodes=1)
    kwargs = {"hidden_sizes": (32, 32), "batch_size": 32, "learning_starts": 256, "updates_per_frame": 0.25}
    module = SACModule(data.obs_dim, data.action_low, data.action_high, **{**kwargs, **model_kwargs})
    before = copy.deepcopy(module.state_dict())
    fit(module, data, tmp_path)
    return module, before


def test_sac_waits_for_learning_starts_then_updates_every_network(tmp_path):
    module, before = fit_sac(tmp_path)
    after = module.state_dict()
    assert int(module.frames) == 512 and len(module.buffer) == 512
    for prefix in ("actor.", "loss.qvalue_network_params.", "loss.target_qvalue_network_params.", "loss.log_alpha"):
        changed = [k for k in after if k.startswith(prefix) and not torch.equal(after[k], before[k])]
        assert changed, f"no {prefix} parameter changed"
    # Batches 2-4 find >= 256 frames in the buffer: 3 × 128 frames × 0.25 = 96 updates.
    for optimizer in module.trainer.optimizers:
        steps = [int(state["step"]) for state in optimizer.state.values()]
        assert steps and set(steps) == {96}
    # Targets trail the online Q networks (soft updates), they do not copy them.
    online = after["loss.qvalue_network_params.module.0.weight"]
    target = after["loss.target_qvalue_network_params.module.0.weight"]
    assert not torch.equal(online, target)


def test_sac_without_enough_frames_does_not_update(tmp_path):
    module, before = fit_sac(tmp_path, learning_starts=10_000)
    after = module.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k != "frames")


@pytest.mark.parametrize("name", ["lr", "alpha_lr", "batch_size", "buffer_size", "updates_per_frame"])
def test_sac_refuses_non_positive_settings(name):
    with pytest.raises(UserInputError, match=f"--model.{name} must be > 0"):
        SACModule(4, [-3.0], [3.0], **{name: 0})


def test_sac_expert_config_trains_resumes_and_records(tmp_path):
    """The shipped HalfCheetah SAC config, shrunk: fit, resume, then record → info → load."""
    common = [
        sys.executable, "train.py", "fit", "--config", "experts/halfcheetah.yaml",
        "--data.frames_per_batch=256", "--data.num_envs=2",
        "--model.learning_starts=256", "--model.batch_size=32", "--model.updates_per_frame=0.125",
        "--eval.eval_every_frames=512", "--eval.episodes=1", "--data.val_episodes=1",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
    ]
    for args in (["--data.total_frames=512"], ["--data.total_frames=1024", "--ckpt_path=last"]):
        proc = subprocess.run([*common, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
    last = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    assert int(checkpoint["state_dict"]["frames"]) == 1024
    assert isinstance(load_expert(last, checkpoint["hyper_parameters"]), SACModule)
    out = tmp_path / "demo.npz"
    proc = subprocess.run(
        [sys.executable, "-m", "gail_lightning.demos", "record", "--ckpt", str(last),
         "--episodes", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "env:       HalfCheetah-v5 (obs 17, action 6)" in proc.stdout
    demos = load_demonstrations(out)
    assert demos.num_episodes == 1 and len(demos.observations) == 1000
