"""benchmarks/learn.py's bookkeeping: a run stopped before its budget is not a result."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from benchmarks import learn

ROOT = Path(__file__).resolve().parents[1]


def fake_training(monkeypatch, reached: int, during=lambda: None, crash: bool = False) -> list[list[str]]:
    """Replace the train.py process by one that writes evaluations up to ``reached`` frames,
    calling ``during()`` while it "trains", and then fails if ``crash``."""
    calls = []

    def run(cmd, **kwargs):
        calls.append(cmd)
        during()
        root = Path(next(a.split("=", 1)[1] for a in cmd if a.startswith("--trainer.default_root_dir=")))
        (root / "checkpoints").mkdir(exist_ok=True)
        (root / "checkpoints" / "last.ckpt").write_text(f"at {reached} frames")
        curve = [{"frames": f, "eval/return": f / 10, "eval/normalized_score": f / 4096}
                 for f in range(1024, reached + 1, 1024)]
        if curve:  # ExpertScore writes the file at the first evaluation
            (root / "eval_history.json").write_text(json.dumps(curve))
        if crash:
            raise subprocess.CalledProcessError(1, cmd)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(learn.subprocess, "run", run)
    return calls


def test_a_run_stopped_early_is_resumed_not_recorded(monkeypatch, tmp_path):
    config = ROOT / "configs" / "inverted_pendulum.yaml"
    budget = ["--data.total_frames=4096"]
    calls = fake_training(monkeypatch, reached=2048)
    assert learn.run_seed(config, 0, tmp_path, budget) is None
    assert not (tmp_path / "seed_0" / "result.json").exists()
    assert "--ckpt_path=last" not in calls[0]

    (tmp_path / "seed_0" / "wall.json").write_text(json.dumps({"wall_s": 5000.0}))
    calls = fake_training(monkeypatch, reached=4096)
    result = learn.run_seed(config, 0, tmp_path, budget)
    assert "--ckpt_path=last" in calls[0]  # the second sitting resumes the first
    assert result["wall_s"] >= 5000  # and adds its time to the first's
    assert result["frames"] == 4096 and result["final_normalized_score"] == 1.0
    assert result["best_normalized_score"] == 1.0 and result["final_return"] == 409.6
    assert json.loads((tmp_path / "seed_0" / "result.json").read_text()) == result

    calls = fake_training(monkeypatch, reached=4096)
    assert learn.run_seed(config, 0, tmp_path, budget) == result and calls == []  # done: skipped


def test_a_run_that_lost_its_checkpoint_starts_its_clock_and_evaluations_again(monkeypatch, tmp_path):
    """A machine lost mid-run keeps the committed wall.json and eval_history.json and not the
    checkpoint: the rerun trains from frame 0, so neither the lost sitting's time nor its
    evaluations are the rerun's."""
    config = ROOT / "configs" / "inverted_pendulum.yaml"
    (tmp_path / "seed_0").mkdir()
    (tmp_path / "seed_0" / "wall.json").write_text(json.dumps({"wall_s": 5000.0}))
    lost = [{"frames": 4096, "eval/return": 1.0, "eval/normalized_score": 1.0}]  # the lost run's last
    (tmp_path / "seed_0" / "eval_history.json").write_text(json.dumps(lost))
    calls = fake_training(monkeypatch, reached=0)  # stopped before its first evaluation
    assert learn.run_seed(config, 0, tmp_path, ["--data.total_frames=4096"]) is None
    assert "--ckpt_path=last" not in calls[0]
    assert json.loads((tmp_path / "seed_0" / "wall.json").read_text())["wall_s"] < 60


def test_a_stopped_run_is_parked_and_resumes_on_a_machine_that_lost_its_checkpoints(monkeypatch, tmp_path):
    """checkpoints/ is ignored and ends with the machine; the committed parked.ckpt, wall.json
    and eval_history.json carry the run to the next one; parked.ckpt goes once the run is done."""
    config = ROOT / "configs" / "inverted_pendulum.yaml"
    budget = ["--data.total_frames=4096"]
    run = tmp_path / "seed_0"
    fake_training(monkeypatch, reached=2048)
    assert learn.run_seed(config, 0, tmp_path, budget) is None
    parked = run / learn.PARKED
    assert parked.read_text() == "at 2048 frames"
    # git would commit it (subprocess.call: subprocess.run is the fake training here)
    path = f"benchmarks/results/x/seed_0/{learn.PARKED}"
    assert subprocess.call(["git", "check-ignore", "-q", path], cwd=ROOT) == 1

    shutil.rmtree(run / "checkpoints")  # a new machine: the clone has only what was committed
    (run / "wall.json").write_text(json.dumps({"wall_s": 5000.0}))
    calls = fake_training(monkeypatch, reached=4096)
    result = learn.run_seed(config, 0, tmp_path, budget)
    assert f"--ckpt_path={parked}" in calls[0]
    assert result["frames"] == 4096 and result["wall_s"] >= 5000 and not parked.exists()


def test_a_crashed_run_is_parked_at_its_last_checkpoint(monkeypatch, tmp_path):
    """A crash records the sitting's wall time: an older parked.ckpt beside it would, committed,
    resume from before that time and count it twice."""
    (tmp_path / "seed_0").mkdir()
    (tmp_path / "seed_0" / learn.PARKED).write_text("at 1024 frames")
    fake_training(monkeypatch, reached=2048, crash=True)
    with pytest.raises(subprocess.CalledProcessError):
        learn.run_seed(ROOT / "configs" / "inverted_pendulum.yaml", 0, tmp_path, ["--data.total_frames=4096"])
    assert (tmp_path / "seed_0" / learn.PARKED).read_text() == "at 2048 frames"


def test_an_off_policy_run_is_not_parked(monkeypatch, tmp_path):
    """Its replay buffer is never committed, so its checkpoint alone could not resume it as it was."""
    (tmp_path / "seed_0" / "replay_buffer").mkdir(parents=True)
    fake_training(monkeypatch, reached=2048)
    config = ROOT / "configs" / "inverted_pendulum.yaml"
    assert learn.run_seed(config, 0, tmp_path, ["--data.total_frames=4096"]) is None
    assert not (tmp_path / "seed_0" / learn.PARKED).exists()


def test_time_to_score_comes_from_the_log_of_a_run_of_one_sitting(monkeypatch, tmp_path):
    """A resumed run's sittings' clocks differ, and one resumed on another machine has only its
    later sittings' log, where its first 0.9 may be missing."""
    from torch.utils.tensorboard import SummaryWriter

    log = SummaryWriter(tmp_path / "logged" / "version_0")
    for step, frames in enumerate((1024, 2048, 3072, 4096)):
        log.add_scalar("frames", frames, step)
        log.add_scalar("eval/normalized_score", frames / 4096, step)
    log.close()
    assert learn.time_to_score(tmp_path / "logged")["frames"] == 4096

    monkeypatch.setattr(learn, "time_to_score", lambda run_dir: {"frames": 1024})
    config, budget = ROOT / "configs" / "inverted_pendulum.yaml", ["--data.total_frames=4096"]
    fake_training(monkeypatch, reached=4096)
    assert learn.run_seed(config, 0, tmp_path, budget)["time_to_0.9"] == {"frames": 1024}
    fake_training(monkeypatch, reached=2048)
    learn.run_seed(config, 1, tmp_path, budget)
    fake_training(monkeypatch, reached=4096)
    assert learn.run_seed(config, 1, tmp_path, budget)["time_to_0.9"] is None


def test_sigterm_lets_the_training_save_keeps_its_wall_time_and_starts_no_other_run(monkeypatch, tmp_path):
    """SIGTERM reaches the driver with its trainings (``kill -TERM -- -PGID``): without the
    handler Python ends the driver (and this test) before it records the sitting's time."""
    def sigterm_then_train():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)

    config = ROOT / "configs" / "inverted_pendulum.yaml"
    budget = ["--data.total_frames=4096"]
    calls = fake_training(monkeypatch, reached=2048, during=sigterm_then_train)
    default = signal.getsignal(signal.SIGTERM)
    try:
        learn.stop_on_sigterm()
        assert learn.run_seed(config, 0, tmp_path, budget) is None  # stopped early: resumable
        assert json.loads((tmp_path / "seed_0" / "wall.json").read_text())["wall_s"] >= 0.2
        assert learn.run_seed(config, 1, tmp_path, budget) is None
        assert len(calls) == 1 and not (tmp_path / "seed_1").exists()
    finally:
        signal.signal(signal.SIGTERM, default)
        learn.STOP.clear()
