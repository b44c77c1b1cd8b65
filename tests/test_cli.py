"""The CLI as users run it: `python train.py ...` in a subprocess from the repo root."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def tiny_fit(demo_file: Path, root: Path, total_frames: int, *extra: str) -> subprocess.CompletedProcess:
    return run(
        "fit", "--config", "inverted_pendulum.yaml",
        f"--data.demos={demo_file}", f"--data.total_frames={total_frames}",
        "--data.frames_per_batch=512", "--data.num_envs=2",
        "--model.minibatch_size=128", "--model.ppo_epochs=1", "--model.disc_steps=1",
        "--eval.eval_every_frames=512", "--eval.episodes=1", "--data.val_episodes=1",
        f"--trainer.default_root_dir={root}", "--trainer.logger=false",
        *extra,
    )


def frames_in(ckpt: Path) -> int:
    return int(torch.load(ckpt, weights_only=False)["state_dict"]["frames"])


def test_tiny_fit_writes_last_ckpt_and_resumes(demo_file, tmp_path):
    first = tiny_fit(demo_file, tmp_path, 1024)
    assert "Using config" in first.stderr and "configs/inverted_pendulum.yaml" in first.stderr
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert frames_in(last) == 1024
    best = [p for p in last.parent.glob("best-*.ckpt")]
    assert best, "no best checkpoint on eval/normalized_score"
    history = json.loads((tmp_path / "eval_history.json").read_text())
    assert [h["frames"] for h in history] == [512, 1024]
    assert all(0 <= h["eval/return"] <= 1000 for h in history)
    tiny_fit(demo_file, tmp_path, 2048, "--ckpt_path=last")
    assert frames_in(last) == 2048
    history = json.loads((tmp_path / "eval_history.json").read_text())
    assert [h["frames"] for h in history] == [512, 1024, 1536, 2048]


def test_tiny_fit_in_bf16_mixed_precision(demo_file, tmp_path):
    tiny_fit(demo_file, tmp_path, 512, "--trainer.precision=bf16-mixed")
    assert frames_in(tmp_path / "checkpoints" / "last.ckpt") == 512


def test_print_config_round_trips(tmp_path):
    printed = run("fit", "--config", "configs/hopper.yaml", "--model.disc_lr=1e-4", "--print_config").stdout
    config = yaml.safe_load(printed)
    assert config["model"]["disc_lr"] == 1e-4
    assert config["data"]["env_id"] == "Hopper-v5"
    saved = tmp_path / "config.yaml"
    saved.write_text(printed)
    assert run("fit", "--config", str(saved), "--print_config").stdout == printed


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--data.demos=missing.npz", "error: Demonstration file 'missing.npz' does not exist"),
        ("--data.env_id=CartPole-v1", "error: CartPole-v1 has a Discrete action space"),
        ("--data.num_trajectories=500", "error: --data.num_trajectories 500"),
        ("--model.disc_lr=-1", "error: --model.disc_lr must be > 0"),
        ("--model.policy_lr=0", "error: --model.policy_lr must be > 0"),
        ("--data.demos=", "error: --data.demos is empty"),
        ("--data.env_id=Hoper-v5", "error: Unknown environment id 'Hoper-v5'"),
        ("--model.no_such_key=1", "error: unrecognized arguments: --model.no_such_key"),
        ("--model.minibatch_size=100", "error: --data.frames_per_batch (2048) is not divisible"),
    ],
)
def test_bad_input_stops_with_one_line_error(override, message):
    proc = run("fit", "--config", "inverted_pendulum.yaml", override, check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(message)


def test_bare_config_name_resolves_to_configs_folder(tmp_path, monkeypatch):
    from gail_lightning.cli import resolve_config_names

    monkeypatch.chdir(tmp_path)
    resolved = resolve_config_names(["fit", "--config", "hopper.yaml", "--config=hopper.yaml"])
    assert resolved[2] == str(ROOT / "configs" / "hopper.yaml")
    assert resolved[3] == f"--config={ROOT / 'configs' / 'hopper.yaml'}"
    (tmp_path / "hopper.yaml").write_text("{}")
    assert resolve_config_names(["--config", "hopper.yaml"]) == ["--config", "hopper.yaml"]


def test_validate_scores_the_shipped_expert_as_expert():
    proc = run(
        "validate", "--config", "inverted_pendulum.yaml",
        "--ckpt_path", "experts/inverted_pendulum.ckpt",
        "--data.val_episodes=2", "--trainer.logger=false",
    )
    row = next(line for line in proc.stdout.splitlines() if "val/normalized_score" in line)
    assert float(row.split()[-1]) == pytest.approx(1.0)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_at_a_batch_boundary_and_the_run_resumes(demo_file, tmp_path, sig):
    common = [
        "fit", "--config", "inverted_pendulum.yaml", f"--data.demos={demo_file}",
        "--data.frames_per_batch=512", "--model.minibatch_size=128", "--model.ppo_epochs=1",
        "--eval.eval_every_frames=512", "--eval.episodes=1", "--data.val_episodes=1",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
    ]
    proc = subprocess.Popen(
        [sys.executable, "train.py", *common, "--data.total_frames=200000"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    last = tmp_path / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-2000:]
    assert f"{sig.name} received" in stderr
    assert not list(last.parent.glob("*.tmp"))
    stopped_at = frames_in(last)
    assert 512 <= stopped_at < 200000 and stopped_at % 512 == 0
    run(*common, f"--data.total_frames={stopped_at + 1024}", "--ckpt_path=last")
    assert frames_in(last) == stopped_at + 1024
