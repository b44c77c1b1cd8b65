"""Videos of a policy: deterministic episodes rendered offscreen, written as GIF or MP4.

MuJoCo renders headless on Linux through EGL (``MUJOCO_GL=egl``, set here when there is no
display; the ``libegl1`` package) or, where no EGL driver exists, through OSMesa
(``MUJOCO_GL=osmesa``; ``libosmesa6``). With a display, or on macOS, gymnasium picks.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch
from PIL import Image
from tensordict import TensorDict
from torch import nn
from torchrl.envs.utils import ExplorationType, set_exploration_type

from gail_lightning.errors import UserInputError


def use_headless_gl() -> None:
    """On Linux without a display, MuJoCo renders through EGL unless ``MUJOCO_GL`` says otherwise."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")


@torch.no_grad()
def render_episode(
    actor: nn.Module, env_id: str, env_kwargs: Mapping[str, Any] | None = None, seed: int = 0,
    max_steps: int = 1000, size: int = 160, every: int = 2,
) -> list[np.ndarray]:
    """Every ``every``-th frame (``size`` pixels square) of one deterministic episode of
    ``actor`` from ``env.reset(seed=seed)``, at most ``max_steps`` steps."""
    use_headless_gl()
    try:
        env = gym.make(env_id, render_mode="rgb_array", width=size, height=size, **(env_kwargs or {}))
    except TypeError:  # not a MuJoCo env: it renders at its own size
        env = gym.make(env_id, render_mode="rgb_array", **(env_kwargs or {}))
    _follow_the_body(env.unwrapped)
    device = next(actor.parameters()).device
    observation, _ = env.reset(seed=seed)
    frames = []
    with set_exploration_type(ExplorationType.DETERMINISTIC):
        for step in range(max_steps):
            if step % every == 0:
                frames.append(env.render())
            obs = torch.as_tensor(observation, dtype=torch.float32, device=device).unsqueeze(0)
            action = actor(TensorDict({"observation": obs}, [1]))["action"][0]
            observation, _, terminated, truncated, _ = env.step(action.float().cpu().numpy())
            if terminated or truncated:
                break
    frames.append(env.render())
    env.close()
    return frames


def gif(frames: list[np.ndarray], fps: float = 25.0) -> bytes:
    """``frames`` as an animated GIF, looping."""
    images = [Image.fromarray(frame) for frame in frames]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:],
                   duration=round(1000 / fps), loop=0)
    return out.getvalue()


def check_video_path(path: Path) -> str:
    """``path``'s suffix, if it names a video this module writes (before any rendering)."""
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise UserInputError(f"{path}: videos are written as .gif or .mp4; name it <file>.gif or <file>.mp4.")
    return suffix


def write_video(frames: list[np.ndarray], path: Path, fps: float = 25.0) -> Path:
    """Write ``frames`` to ``path`` (made with its folders), whole or not at all: a GIF, or an
    MP4 through imageio's ffmpeg plugin (``pip install "gail_lightning[video]"``)."""
    suffix = check_video_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{suffix}")  # ffmpeg picks the container by suffix
    if suffix == ".gif":
        tmp.write_bytes(gif(frames, fps))
    else:
        try:
            import imageio.v2 as imageio  # noqa: PLC0415 -- optional: only MP4 needs ffmpeg
            import imageio_ffmpeg  # noqa: F401, PLC0415
        except ImportError:
            raise UserInputError(
                f"{path}: MP4 needs ffmpeg: pip install \"gail_lightning[video]\", or write a .gif."
            ) from None
        imageio.mimwrite(tmp, frames, fps=fps, format="FFMPEG", macro_block_size=1)
    tmp.replace(path)
    return path


def _follow_the_body(env: gym.Env) -> None:
    """Film through the model's ``track`` camera where it has one (the locomotion tasks: it
    follows the body), not the free camera that the body walks out of."""
    model = getattr(env, "model", None)
    camera = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, "track") if isinstance(model, mujoco.MjModel) else -1
    if camera >= 0:
        env.mujoco_renderer.camera_id = camera
