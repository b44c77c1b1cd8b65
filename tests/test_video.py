"""Videos of policies: offscreen frames, GIFs, the render command and evaluation videos."""

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import imageio.v2 as imageio
import lightning as L
import pytest
import torch
from conftest import ENV_ID
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gail_lightning import callbacks
from gail_lightning.callbacks import ExpertScore
from gail_lightning.data import CollectorDataModule
from gail_lightning.errors import UserInputError
from gail_lightning.evaluation import Evaluator
from gail_lightning.networks import RunningNorm, make_actor
from gail_lightning.ppo_module import PPOModule
from gail_lightning.settings import PPOSettings
from gail_lightning.video import render_episode, use_headless_gl, write_video

ROOT = Path(__file__).resolve().parents[1]


def gl_works() -> bool:
    """Whether MuJoCo renders offscreen here, asked of gymnasium alone, so that a bug of ours
    still fails the tests below instead of skipping them."""
    use_headless_gl()
    env = gym.make(ENV_ID, render_mode="rgb_array", width=16, height=16)
    try:
        env.reset(seed=0)
        env.render()
    except Exception:  # noqa: BLE001 -- no EGL (or OSMesa) driver: the tests skip
        return False
    finally:
        env.close()
    return True


pytestmark = pytest.mark.skipif(not gl_works(), reason="MuJoCo cannot render offscreen here (no EGL/OSMesa)")


def test_an_episode_is_filmed_every_kth_step_and_written_as_a_gif(tmp_path):
    actor = make_actor(RunningNorm(4), 4, [-3.0], [3.0], (8,))
    frames = render_episode(actor, ENV_ID, seed=0, max_steps=10, size=32, every=3)
    assert len(frames) == 5 and frames[0].shape == (32, 32, 3)  # steps 0, 3, 6, 9 and the last state
    path = write_video(frames, tmp_path / "new" / "episode.gif")
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.size == (32, 32)


def test_the_render_command_films_a_checkpoint_as_gif_or_mp4_and_refuses_other_formats(tmp_path):
    command = [sys.executable, "-m", "gail_lightning.demos", "render", "--ckpt", "experts/hopper.ckpt",
               "--max-steps", "20", "--size", "48"]
    for name in ("hopper.gif", "hopper.mp4"):
        proc = subprocess.run([*command, "--out", str(tmp_path / name)], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "11 frames of Hopper-v5" in proc.stdout
    with Image.open(tmp_path / "hopper.gif") as gif:
        assert gif.size == (48, 48) and gif.n_frames > 1  # it hops: the frames differ
    video = imageio.mimread(tmp_path / "hopper.mp4")
    assert len(video) == 11 and video[0].shape == (48, 48, 3)
    proc = subprocess.run([*command, "--out", str(tmp_path / "hopper.avi")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'hopper.avi'}: videos are written as .gif or .mp4; name it <file>.gif or <file>.mp4.")


def small_ppo_fit(tmp_path, callback: ExpertScore) -> L.Trainer:
    torch.manual_seed(0)
    data = CollectorDataModule(env_id=ENV_ID, frames_per_batch=256, total_frames=512, num_envs=2, val_episodes=1)
    module = PPOModule(data.obs_dim, data.action_low, data.action_high, ppo=PPOSettings(epochs=1, minibatch_size=64))
    trainer = L.Trainer(max_epochs=1, logger=TensorBoardLogger(tmp_path, name=""), enable_checkpointing=False,
                        enable_progress_bar=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
                        limit_val_batches=0, callbacks=[callback])
    trainer.fit(module, data)
    return trainer


def test_each_evaluation_is_filmed_into_the_run_folder_and_tensorboard(tmp_path, monkeypatch):
    """The film is the evaluation's first episode: same seed."""
    evaluated, filmed = [], []
    returns = Evaluator.returns
    monkeypatch.setattr(Evaluator, "returns", lambda self, actor, first, episodes: (
        evaluated.append(first), returns(self, actor, first, episodes))[1])
    def recording(*args, **kwargs):
        if len(args) > 3:  # a film, not the start-up probe
            filmed.append(args[3])
        return render_episode(*args, **kwargs)

    monkeypatch.setattr(callbacks, "render_episode", recording)
    small_ppo_fit(tmp_path, ExpertScore(eval_every_frames=256, episodes=2, video=True, video_steps=6))
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["eval_256.gif", "eval_512.gif"]
    events = EventAccumulator(str(tmp_path / "version_0"))
    events.Reload()
    assert [image.step for image in events.Images("eval/video")] == [256, 512]
    assert filmed == evaluated[:2] == [10_000, 10_002]


def test_a_video_that_cannot_be_made_is_refused_at_start_and_one_lost_later_only_warns(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no GL")

    monkeypatch.setattr(callbacks, "render_episode", broken)
    with pytest.raises(UserInputError, match="--eval.video true cannot render InvertedPendulum-v5 here"):
        small_ppo_fit(tmp_path / "a", ExpertScore(eval_every_frames=256, episodes=1, video=True))
    monkeypatch.setattr(callbacks, "render_episode", render_episode)
    monkeypatch.setattr(callbacks, "write_video", broken)
    with pytest.warns(UserWarning, match="filming at 256 frames failed"):
        trainer = small_ppo_fit(tmp_path / "b", ExpertScore(eval_every_frames=256, episodes=1, video=True))
    assert trainer.lightning_module.frames == 512  # the run went on
