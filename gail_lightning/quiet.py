"""The warnings judged benign, silenced here and nowhere else, each with its reason; every
other warning stays visible. Imported by the CLI and by the env module (rollout workers
import that one)."""

from __future__ import annotations

import sys
import warnings

import mujoco

# Lightning warns that manual-optimization checkpoints hold the post-update weights:
# that is what resuming needs, so the warning says nothing to act on.
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
# training_step(dataloader_iter) is deliberate (OnlineModule.next_batch: no prefetch, one
# batch per step), so Lightning's two notices that the signature is experimental say nothing new.
warnings.filterwarnings("ignore", message="Found `dataloader_iter` argument")
warnings.filterwarnings("ignore", message="You are using the `dataloader_iter` step flavor")
# Lightning 2.6's own use of a torch pytree API that torch 2.13 deprecates; nothing of ours.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def _mujoco_warning(message: str) -> None:
    """MuJoCo's warnings, as it prints them, but for the deprecation of ``settotalmass`` in
    gymnasium's own HalfCheetah model: nothing a user can act on, once per env made."""
    if "'settotalmass' is deprecated" not in message:
        print(f"WARNING: {message}", file=sys.stderr, flush=True)


mujoco.set_mju_user_warning(_mujoco_warning)
