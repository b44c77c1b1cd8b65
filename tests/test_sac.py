"""The SAC expert trainer: updates, target networks, the replay buffer on disk, checkpoints
(old and new), and recording demos."""

import copy
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import fit
from tensordict import TensorDict
from torch import nn
from torchrl.objectives import SACLoss, SoftUpdate

from gail_lightning.data import CollectorDataModule
from gail_lightning.demonstrations import load_demonstrations
from gail_lightning.demos import load_expert
from gail_lightning.errors import UserInputError
from gail_lightning.networks import RunningNorm, make_actor, make_qvalue
from gail_lightning.sac import DiskReplayBuffer, SACModule

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"hidden_sizes": (32, 32), "batch_size": 32, "learning_starts": 256, "updates_per_frame": 0.25}


def sac_run(**model_kwargs) -> tuple[SACModule, CollectorDataModule]:
    torch.manual_seed(0)
    data = CollectorDataModule(env_id="InvertedPendulum-v5", frames_per_batch=128,
                               total_frames=model_kwargs.pop("total_frames", 512), num_envs=2, val_episodes=1)
    module = SACModule(data.obs_dim, data.action_low, data.action_high, **{**SMALL, **model_kwargs})
    return module, data


def fit_sac(tmp_path: Path, **model_kwargs) -> tuple[SACModule, dict]:
    module, data = sac_run(**model_kwargs)
    before = copy.deepcopy(module.state_dict())
    fit(module, data, tmp_path)
    return module, before


def test_sac_waits_for_learning_starts_then_updates_every_network(tmp_path):
    module, before = fit_sac(tmp_path)
    after = module.state_dict()
    assert int(module.frames) == 512 and len(module.buffer) == 512
    for prefix in ("actor.", "qvalue.", "target_qvalue.", "log_alpha"):
        changed = [k for k in after if k.startswith(prefix) and not torch.equal(after[k], before[k])]
        assert changed, f"no {prefix} parameter changed"
    # Batches 2-4 find >= 256 frames in the buffer: 3 × 128 frames × 0.25 = 96 updates.
    for optimizer in module.trainer.optimizers:
        steps = [int(state["step"]) for state in optimizer.state.values()]
        assert steps and set(steps) == {96}
    # Targets trail the online Q networks (soft updates), they do not copy them.
    assert not torch.equal(after["qvalue.0.weight"], after["target_qvalue.0.weight"])
    # The buffer lives in the run folder, which git ignores wherever it is.
    assert (tmp_path / "replay_buffer" / ".gitignore").read_text() == "*\n"


def test_sac_without_enough_frames_does_not_update(tmp_path):
    module, before = fit_sac(tmp_path, learning_starts=10_000)
    after = module.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k != "frames")


@pytest.mark.parametrize("name", ["lr", "alpha_lr", "batch_size", "buffer_size", "updates_per_frame"])
def test_sac_refuses_non_positive_settings(name):
    with pytest.raises(UserInputError, match=f"--model.{name} must be > 0"):
        SACModule(4, [-3.0], [3.0], **{name: 0})


def test_a_buffer_smaller_than_one_batch_is_refused(tmp_path):
    with pytest.raises(UserInputError, match=r"--model.buffer_size \(64\) is smaller than one batch"):
        fit_sac(tmp_path, buffer_size=64)


def torchrl_sac(obs_dim: int, low: list[float], high: list[float]) -> tuple[SACLoss, SoftUpdate, list]:
    """TorchRL's SACLoss as ``SACModule`` used it before 2026-12, with its target updater
    (which copies the Q networks into the targets as it is made) and optimizers."""
    actor = make_actor(RunningNorm(obs_dim), obs_dim, low, high, (32, 32), state_dependent_scale=True,
                       activation=nn.ReLU)
    loss = SACLoss(actor, make_qvalue(obs_dim, len(low), (32, 32)), num_qvalue_nets=2, loss_function="l2")
    loss.make_value_estimator(gamma=0.99)
    _ = loss.target_entropy
    target_update = SoftUpdate(loss, tau=0.005)
    opts = [torch.optim.Adam(actor.parameters(), lr=3e-4),
            torch.optim.Adam(loss.qvalue_network_params.values(True, True), lr=3e-4),
            torch.optim.Adam([loss.log_alpha], lr=3e-4)]
    return loss, target_update, opts


def random_batch(size: int, obs_dim: int, action_dim: int, seed: int = 1) -> TensorDict:
    """Replayed transitions, some of which end an episode (terminated or cut short)."""
    g = torch.Generator().manual_seed(seed)
    return TensorDict({
        "observation": 3 * torch.randn(size, obs_dim, generator=g),
        "action": torch.rand(size, action_dim, generator=g) - 0.5,
        "next": {"observation": 3 * torch.randn(size, obs_dim, generator=g),
                 "reward": torch.randn(size, 1, generator=g),
                 "done": torch.rand(size, 1, generator=g) < 0.4,
                 "terminated": torch.rand(size, 1, generator=g) < 0.3},
    }, [size])


def assert_close(ours: torch.Tensor, theirs: torch.Tensor, name: str, atol: float) -> None:
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=atol, msg=lambda m: f"{name}: {m}")


def as_before(module: SACModule) -> dict[str, torch.Tensor]:
    """``module``'s networks under the state_dict keys of the TorchRL-based module."""
    names = {"qvalue.": "loss.qvalue_network_params.module.",
             "target_qvalue.": "loss.target_qvalue_network_params.module.", "log_alpha": "loss.log_alpha"}
    renamed = {}
    for key, value in module.state_dict().items():
        prefix = next((p for p in names if key.startswith(p)), "")
        renamed[names.get(prefix, "") + key[len(prefix):]] = value
    return renamed


def test_losses_and_update_equal_torchrl_sac_loss():
    """The same networks, batch and seed give TorchRL's SACLoss's losses and Adam step."""
    obs_dim, low, high = 5, [-3.0, -1.0], [3.0, 2.0]  # not [-1, 1]: the squash's affine part too
    torch.manual_seed(0)
    module = SACModule(obs_dim, low, high, hidden_sizes=(32, 32))
    torch.manual_seed(0)
    reference, reference_target_update, reference_opts = torchrl_sac(obs_dim, low, high)
    theirs = {"loss." + k: v for k, v in reference.state_dict().items()}
    for key, value in as_before(module).items():  # the same networks, drawn from the same seed
        assert key not in theirs or torch.equal(value, theirs[key]), key
    actor = reference.actor_network
    assert all(torch.equal(v, module.actor.state_dict()[k]) for k, v in actor.state_dict().items())
    with torch.no_grad():  # then a temperature and targets of their own, in both
        module.log_alpha.fill_(-0.7)
        for p in module.target_qvalue.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for key, value in as_before(module).items():
            if key in theirs:
                theirs[key].copy_(value)

    batch = random_batch(64, obs_dim, len(low))
    torch.manual_seed(5)
    expected = reference(batch.clone())
    torch.manual_seed(5)
    losses = module.losses(batch.clone())
    for key in ("loss_actor", "loss_qvalue", "loss_alpha", "alpha", "entropy"):
        assert_close(losses[key], expected[key], key, atol=1e-5)

    # One step: TorchRL's (plain Adam, SoftUpdate) against the module's (fused Adam, lerp).
    for opt in reference_opts:
        opt.zero_grad()
    (expected["loss_actor"] + expected["loss_qvalue"] + expected["loss_alpha"]).backward()
    for opt in reference_opts:
        opt.step()
    reference_target_update.step()
    opts = module.configure_optimizers()
    (losses["loss_actor"] + losses["loss_qvalue"] + losses["loss_alpha"]).backward()
    for opt in opts:
        opt.step()
    module.update_targets()
    ours = as_before(module)
    theirs = {"loss." + k: v for k, v in reference.state_dict().items()}
    for key, value in ours.items():
        if key.startswith("actor."):
            assert_close(value, actor.state_dict()[key[len("actor."):]], key, atol=1e-6)
        elif key.startswith("loss."):
            assert_close(value, theirs[key], key, atol=1e-6)
    assert not torch.equal(ours["loss.log_alpha"], torch.tensor(-0.7))  # the step moved it


def test_checkpoints_of_the_torchrl_module_load_and_resume_their_optimizers():
    """The shipped experts were written by the SACLoss-based module."""
    path = ROOT / "experts" / "halfcheetah.ckpt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    old = dict(checkpoint["state_dict"])
    module = load_expert(path, checkpoint)
    state = module.state_dict()
    assert torch.equal(state["qvalue.2.weight"], old["loss.qvalue_network_params.module.2.weight"])
    assert torch.equal(state["target_qvalue.4.bias"], old["loss.target_qvalue_network_params.module.4.bias"])
    assert torch.equal(state["log_alpha"], old["loss.log_alpha"])
    assert torch.equal(state["actor.module.0.module.1.0.weight"], old["actor.module.0.module.1.0.weight"])
    opts = module.configure_optimizers()
    for opt, saved in zip(opts, checkpoint["optimizer_states"], strict=True):
        opt.load_state_dict(saved)  # as a resumed fit does
        assert all(group["fused"] for group in opt.param_groups), "resumed with the old unfused Adam"
    losses = module.losses(random_batch(8, 17, 6))
    (losses["loss_actor"] + losses["loss_qvalue"] + losses["loss_alpha"]).backward()
    for opt in opts:  # Adam's moments fit the parameters they now belong to
        opt.step()
        assert all(opt.state[p]["exp_avg"].shape == p.shape for g in opt.param_groups for p in g["params"])


def live(buffer: DiskReplayBuffer) -> TensorDict:
    """The transitions a buffer samples from, copied."""
    return buffer.buffer.storage[torch.arange(len(buffer))].clone()


def test_disk_buffer_restores_the_saved_state_whatever_was_written_after(tmp_path):
    def transitions(first: int, n: int) -> TensorDict:
        return TensorDict({"observation": torch.arange(first, first + n).float().unsqueeze(-1)}, [n])

    buffer = DiskReplayBuffer(tmp_path / "rb", capacity=10, run="a")
    buffer.extend(transitions(0, 6))
    early = buffer.save()
    buffer.extend(transitions(6, 6))  # wraps: overwrites 0 and 1, which the early save holds
    state, saved = buffer.save(), live(buffer)
    buffer.extend(transitions(12, 7))  # overwrites 2-8, then a crash: no save
    resumed = DiskReplayBuffer(tmp_path / "rb", capacity=10, run="b")
    resumed.restore(state)
    assert len(resumed) == 10 and resumed.buffer.write_count == 12
    assert (live(resumed) == saved).all()
    resumed.extend(transitions(12, 3))
    assert live(resumed)["observation"].squeeze(-1).tolist() == [10, 11, 12, 13, 14, 5, 6, 7, 8, 9]
    older = DiskReplayBuffer(tmp_path / "rb", capacity=10, run="c")
    older.restore(early)  # each of its transitions overwritten once at most
    assert live(older)["observation"].squeeze(-1).tolist() == [0, 1, 2, 3, 4, 5]

    ring = DiskReplayBuffer(tmp_path / "ring", capacity=4, run="d")
    ring.extend(transitions(0, 4))
    state = ring.save()
    ring.extend(transitions(4, 4))
    ring.extend(transitions(8, 4))  # every slot overwritten twice
    with pytest.warns(UserWarning, match="4 of the checkpoint's 4 replay-buffer transitions were overwritten"):
        DiskReplayBuffer(tmp_path / "ring", capacity=4, run="e").restore(state)
    with pytest.warns(UserWarning, match="does not hold this checkpoint's replay buffer"):
        DiskReplayBuffer(tmp_path / "rb", capacity=10, run="f").restore({"run": "other", "writes": 12})


class Interrupt(L.Callback):
    """Saves ``path`` after ``save_at`` frames, keeping a copy of the buffer then, and ends the
    run after ``crash_at`` frames as a crash would: without a save."""

    def __init__(self, path: Path, save_at: int, crash_at: int) -> None:
        self.path, self.save_at, self.crash_at = path, save_at, crash_at
        self.buffer: TensorDict | None = None

    def on_train_batch_end(self, trainer: L.Trainer, module: SACModule, *args) -> None:
        if int(module.frames) == self.save_at:
            trainer.save_checkpoint(self.path)
            self.buffer = live(module.buffer)
        if int(module.frames) == self.crash_at:
            raise KeyError("crash")  # not KeyboardInterrupt, which Lightning turns into a clean stop


class BufferAtStart(L.Callback):
    def on_train_start(self, trainer: L.Trainer, module: SACModule) -> None:
        self.length = len(module.buffer)
        self.buffer = live(module.buffer) if self.length else None


def fit_to(module: SACModule, data: CollectorDataModule, root: Path, callback: L.Callback, **fit_kwargs) -> None:
    """``conftest.fit`` with a callback, and ``fit``'s arguments (``ckpt_path``)."""
    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        num_sanity_val_steps=0, default_root_dir=root, callbacks=[callback])
    trainer.fit(module, data, **fit_kwargs)


def test_a_crashed_run_resumes_with_its_buffer_and_continues_as_the_uninterrupted_one(tmp_path):
    """Buffer of 3 batches; saved after 4 (the ring has wrapped), 2 more written before the
    crash overwrite transitions the save holds."""
    settings = {"buffer_size": 384, "updates_per_frame": 0.125, "total_frames": 1024}
    uninterrupted, data = sac_run(**settings)
    fit(uninterrupted, data, tmp_path / "uninterrupted")

    module, data = sac_run(**settings)
    interrupt = Interrupt(tmp_path / "run" / "saved.ckpt", save_at=512, crash_at=768)
    with pytest.raises(KeyError, match="crash"):
        fit_to(module, data, tmp_path / "run", interrupt)
    resumed, data = sac_run(**settings)
    at_start = BufferAtStart()
    fit_to(resumed, data, tmp_path / "run", at_start, ckpt_path=interrupt.path)

    assert at_start.length == len(interrupt.buffer) == 384
    assert set(at_start.buffer.keys(True, True)) == set(interrupt.buffer.keys(True, True))
    for key, value in interrupt.buffer.items(True, True):
        assert torch.equal(at_start.buffer[key], value), key
    assert int(resumed.frames) == 1024
    ours, theirs = resumed.state_dict(), uninterrupted.state_dict()
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key
    for ours, theirs in zip(resumed.trainer.optimizers, uninterrupted.trainer.optimizers, strict=True):
        for slot, state in theirs.state_dict()["state"].items():
            assert all(torch.equal(ours.state_dict()["state"][slot][k], v) for k, v in state.items())


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
        proc = subprocess.run([*common, *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                              check=False)
        assert proc.returncode == 0, proc.stderr[-3000:]
    last = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    assert int(checkpoint["state_dict"]["frames"]) == 1024
    assert checkpoint["replay_buffer"]["writes"] == 1024  # the resumed run extended the restored buffer
    assert isinstance(load_expert(last, checkpoint), SACModule)
    out = tmp_path / "demo.npz"
    proc = subprocess.run(
        [sys.executable, "-m", "gail_lightning.demos", "record", "--ckpt", str(last),
         "--episodes", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "env:       HalfCheetah-v5 (obs 17, action 6)" in proc.stdout
    demos = load_demonstrations(out)
    assert demos.num_episodes == 1 and len(demos.observations) == 1000
