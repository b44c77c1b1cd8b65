"""Rollout workers: seeds, errors and checkpoint state, in and out of process."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from gail_lightning.errors import UserInputError
from gail_lightning.networks import RunningNorm, make_actor
from gail_lightning.rollouts import Rollouts

ENV_ID = "InvertedPendulum-v5"


def actor():
    return make_actor(RunningNorm(4), 4, [-3.0], [3.0], [16])


def rollouts(num_workers: int, overlap: bool = True) -> Rollouts:
    return Rollouts(ENV_ID, {}, num_envs=2, frames_per_batch=64, num_workers=num_workers, overlap=overlap)


def test_workers_step_their_own_envs_and_stack_their_batches():
    r = rollouts(2)
    r.start(actor(), seed=0)
    try:
        batch = next(r)
    finally:
        r.close()
    assert batch.batch_size == (4, 16)  # 2 workers x 2 envs, 64 frames
    first = batch["observation"][:, 0]
    assert torch.unique(first, dim=0).shape[0] == 4, "two envs started from the same seed"
    # The Gaussian noise behind each action: the workers must draw their own.
    squashed = (batch["action"] / 3.0).clamp(-1 + 1e-6, 1 - 1e-6)
    noise = (squashed.atanh() - batch["loc"]) / batch["scale"]
    assert not torch.allclose(noise[:2], noise[2:], atol=1e-3), "both workers drew the same noise"


def test_a_failing_worker_stops_the_trainer_with_its_traceback():
    r = rollouts(1)
    r.start(actor(), seed=0)
    try:
        r.sync_weights(make_actor(RunningNorm(4), 4, [-3.0], [3.0], [32]))  # other sizes
        with pytest.raises(RuntimeError, match="A rollout worker failed:(.|\n)*size mismatch"):
            next(r)
    finally:
        r.close()


def test_state_from_two_workers_is_refused_by_one():
    two, one = rollouts(2), rollouts(1)
    two.start(actor(), seed=0)
    one.start(actor(), seed=0)
    try:
        next(two)
        state = two.state_dict()
        assert state["pending"] is not None, "the overlapped batch in flight was not saved"
        with pytest.raises(UserInputError, match="collecting with 2 workers but --data.num_workers is 1"):
            one.load_state_dict(state)
    finally:
        two.close()
        one.close()


def test_workers_outlive_a_group_signal_and_end_with_a_trainer_that_never_closed_them(tmp_path):
    """Workers ignore SIGTERM (the trainer's checkpoint needs them), yet a trainer that exits
    without ``close`` (a crash) must neither hang on them nor leave them running."""
    script = tmp_path / "trainer.py"
    script.write_text(
        "import os, signal, sys\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_rollouts import actor, rollouts\n"
        "r = rollouts(2)\n"
        "r.start(actor(), seed=0)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "os.killpg(0, signal.SIGTERM)\n"
        "next(r)  # the workers are still there\n"
        "print(*(w.process.pid for w in r._workers), flush=True)\n"
        "raise SystemExit(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
        start_new_session=True,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    for pid in map(int, proc.stdout.split()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
