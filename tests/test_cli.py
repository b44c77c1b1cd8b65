"""The CLI as users run it: `python train.py ...` in a subprocess from the repo root."""

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, frames_in, run


def tiny_fit(demo_file: Path, root: Path, total_frames: int, *extra: str) -> subprocess.CompletedProcess:
    return run(
        "fit", "--config", "inverted_pendulum.yaml",
        f"--data.demos={demo_file}", f"--data.total_frames={total_frames}",
        "--data.frames_per_batch=512", "--data.num_envs=2",
        "--model.ppo.minibatch_size=128", "--model.ppo.epochs=1", "--model.disc.steps=1",
        "--eval.eval_every_frames=512", "--eval.episodes=1", "--data.val_episodes=1",
        f"--trainer.default_root_dir={root}", "--trainer.logger=false",
        *extra,
    )


COLLECTION = {
    "overlap": ["--data.overlap=true"],  # one worker process beside the learner
    "serial": ["--data.num_workers=0", "--data.overlap=false"],
    "two workers": ["--data.num_workers=2", "--data.overlap=true"],
}


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker`` (forked workers share their trainer's)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes().decode(errors="replace") \
                    and "Z" not in (proc / "stat").read_text().split(")")[-1].split()[0]:
                found.append(int(proc.name))
        except OSError:
            continue
    return found


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


@pytest.mark.parametrize("collection", ["overlap", "two workers"])
def test_a_run_killed_before_its_first_evaluation_resumes(demo_file, tmp_path, collection):
    args = [
        "fit", "--config", "inverted_pendulum.yaml", *COLLECTION[collection], f"--data.demos={demo_file}",
        "--data.total_frames=200000", "--data.frames_per_batch=512", "--data.num_envs=2",
        "--model.ppo.minibatch_size=128", "--model.ppo.epochs=1", "--data.val_episodes=1",
        "--eval.eval_every_frames=100000", f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
        "--last_checkpoint.every_seconds=1",
    ]
    proc = subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.kill()  # SIGKILL: no handler runs, as in a crash or an OOM kill
    proc.wait()
    assert last.exists(), "no last.ckpt before the first evaluation"
    deadline = time.time() + 20  # the rollout workers notice that the trainer is gone
    while processes_with(str(tmp_path)) and time.time() < deadline:
        time.sleep(0.2)
    assert not processes_with(str(tmp_path)), "rollout workers outlived their killed trainer"
    stopped_at = frames_in(last)
    assert 512 <= stopped_at < 100000
    run(*[a for a in args if not a.startswith("--data.total_frames")],
        f"--data.total_frames={stopped_at + 512}", "--ckpt_path=last")
    assert frames_in(last) == stopped_at + 512


def test_resume_with_another_env_count_is_refused(demo_file, tmp_path):
    tiny_fit(demo_file, tmp_path, 512)
    proc = run(
        "fit", "--config", "inverted_pendulum.yaml", f"--data.demos={demo_file}",
        "--data.num_envs=4", "--data.frames_per_batch=512", "--model.ppo.minibatch_size=128",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false", "--ckpt_path=last",
        check=False,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: The checkpoint was collecting with 2 envs but --data.num_envs is 4"
    )


@pytest.mark.parametrize("policy_optimizer", ["ppo", "trpo"])
def test_tiny_hopper_fit_in_bf16_mixed_precision(tmp_path, policy_optimizer):
    run(
        "fit", "--config", "hopper.yaml", f"--model.policy_optimizer={policy_optimizer}",
        "--data.total_frames=1024", "--data.frames_per_batch=512", "--data.num_envs=2",
        "--model.ppo.epochs=1", "--eval.eval_every_frames=512", "--eval.episodes=1",
        "--data.val_episodes=1", "--trainer.precision=bf16-mixed",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
    )
    assert frames_in(tmp_path / "checkpoints" / "last.ckpt") == 1024


def test_print_config_round_trips(tmp_path):
    printed = run("fit", "--config", "configs/hopper.yaml", "--model.disc.lr=2e-4", "--print_config").stdout
    config = yaml.safe_load(printed)
    assert config["model"]["class_path"] == "gail_lightning.GAILModule"
    assert config["model"]["init_args"]["disc"]["lr"] == 2e-4
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
        ("--model.disc.lr=-1", "error: --model.disc.lr must be > 0"),
        ("--model.ppo.lr=0", "error: --model.ppo.lr must be > 0"),
        ("--model.disc_lr=1e-4", "error: --model.disc_lr is now --model.disc.lr (settings are grouped by role"),
        ("--model.reward=env", "error: --model.reward env is now its own model: train on the env reward with"),
        ("--data.demos=", "error: --data.demos is empty"),
        ("--data.env_id=Hoper-v5", "error: Unknown environment id 'Hoper-v5'"),
        ("--model.ppo.minibatch_size=100", "error: --data.frames_per_batch (2048) is not divisible"),
    ],
)
def test_bad_input_stops_with_one_line_error(override, message):
    proc = run("fit", "--config", "inverted_pendulum.yaml", override, check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(message)


def test_unknown_config_key_gets_the_lightning_cli_error():
    proc = run("fit", "--config", "inverted_pendulum.yaml", "--model.no_such_key=1", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "Option 'no_such_key' is not accepted" in proc.stderr


@pytest.mark.parametrize(
    "config", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml"))
)
def test_every_shipped_config_parses(config, monkeypatch, capsys):
    from gail_lightning.cli import main

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["train.py", "fit", "--config", config, "--print_config"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["env_id"].endswith("-v5")
    assert printed["trainer"]["default_root_dir"].startswith("runs/")


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
        "validate", "--config", "experts/inverted_pendulum.yaml", "--data.demos=demos/inverted_pendulum.npz",
        "--ckpt_path", "experts/inverted_pendulum.ckpt",
        "--data.val_episodes=2", "--trainer.logger=false",
    )
    # Lightning prints a plain or a rich table (rich comes with the minari extra).
    score = re.search(r"val/normalized_score\W+([-+.\deE]+)", proc.stdout)
    assert score is not None and float(score.group(1)) == pytest.approx(1.0)


def signal_run(demo_file: Path, root: Path, collection: str) -> list[str]:
    """A short fit (8 batches) that logs its losses to CSV."""
    return [
        "fit", "--config", "inverted_pendulum.yaml", *COLLECTION[collection], f"--data.demos={demo_file}",
        "--data.total_frames=4096", "--data.frames_per_batch=512", "--data.num_envs=2",
        "--model.ppo.minibatch_size=128", "--model.ppo.epochs=1",
        "--eval.eval_every_frames=1024", "--eval.episodes=1", "--data.val_episodes=1",
        f"--trainer.default_root_dir={root}", "--last_checkpoint.every_seconds=0",
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.save_dir={root}",
    ]


def logged_losses(root: Path) -> dict[int, tuple[str, str]]:
    """frames → (discriminator loss, PPO objective) over every CSV log under ``root``."""
    losses = {}
    for path in root.rglob("metrics.csv"):
        for row in csv.DictReader(path.open()):
            if row.get("loss/discriminator"):
                losses[int(float(row["frames"]))] = (row["loss/discriminator"], row["ppo/loss_objective"])
    return losses


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, demos):
    """The uninterrupted run of each collection mode, made once."""
    roots: dict[str, Path] = {}

    def root_of(collection: str) -> Path:
        if collection not in roots:
            root = tmp_path_factory.mktemp("uninterrupted")
            demos.save(root / "demos.npz")
            run(*signal_run(root / "demos.npz", root, collection))
            roots[collection] = root
        return roots[collection]

    return root_of


# "group": the signal reaches the worker processes too, as Ctrl-C in a terminal,
# `kill -- -PGID`, `timeout`, a scheduler or `docker stop` send it; "trainer": `kill PID`.
# "parked": resumed from a copy of last.ckpt on a machine without checkpoints/ (benchmarks/learn.py).
@pytest.mark.parametrize(("sig", "collection", "to", "resume_from"), [
    (signal.SIGTERM, "overlap", "trainer", "last"), (signal.SIGINT, "overlap", "group", "last"),
    (signal.SIGTERM, "serial", "trainer", "last"), (signal.SIGTERM, "two workers", "trainer", "last"),
    (signal.SIGTERM, "two workers", "group", "last"), (signal.SIGINT, "two workers", "group", "last"),
    (signal.SIGTERM, "serial", "trainer", "parked"),
])
def test_signal_stops_and_the_resumed_run_equals_an_uninterrupted_one(
    demo_file, tmp_path, sig, collection, to, resume_from, uninterrupted
):
    uninterrupted = uninterrupted(collection)
    args = signal_run(demo_file, tmp_path, collection)
    proc = subprocess.Popen(
        [sys.executable, "train.py", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,  # its own process group, which the test may signal whole
    )
    last = tmp_path / "checkpoints" / "last.ckpt"
    try:
        deadline = time.time() + 300
        while not last.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        if proc.poll() is None and to == "group":
            os.killpg(proc.pid, sig)
        elif proc.poll() is None:
            proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=300)
    finally:  # nothing left running, whatever failed
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-2000:]
    assert f"{sig.name} received" in stderr
    assert not list(last.parent.glob("*.tmp"))
    stopped_at = frames_in(last)
    assert 512 <= stopped_at < 4096 and stopped_at % 512 == 0, "the signal came too late to test resume"
    if resume_from == "parked":
        parked = tmp_path / "parked.ckpt"
        shutil.copyfile(last, parked)
        shutil.rmtree(last.parent)
        resume_from = str(parked)
    resumed_run = run(*args, f"--ckpt_path={resume_from}")
    # Resumed mid-epoch, the bar still counts frames out of the budget.
    assert re.search(r"Epoch 0: +100%\|.*\| 4096/4096 \[", resumed_run.stdout), resumed_run.stdout[-500:]

    resumed = torch.load(last, weights_only=True)
    reference = torch.load(uninterrupted / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["state_dict"].keys() == reference["state_dict"].keys()
    for key, value in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    for ours, theirs in zip(resumed["optimizer_states"], reference["optimizer_states"], strict=True):
        for slot, state in theirs["state"].items():
            assert all(torch.equal(ours["state"][slot][k], v) for k, v in state.items())
    history = json.loads((tmp_path / "eval_history.json").read_text())
    assert history == json.loads((uninterrupted / "eval_history.json").read_text())
    expected = logged_losses(uninterrupted)
    after_resume = {f: v for f, v in logged_losses(tmp_path).items() if f > stopped_at}
    assert after_resume and after_resume == {f: v for f, v in expected.items() if f > stopped_at}


@pytest.mark.parametrize("precision, logger", [("32-true", True), ("bf16-mixed", True), ("32-true", False)])
def test_a_run_folder_that_does_not_exist_yet_holds_everything_the_run_writes(demo_file, tmp_path, precision, logger):
    root = tmp_path / "not" / "yet"
    run("fit", "--config", "inverted_pendulum.yaml", f"--data.demos={demo_file}", "--data.total_frames=1024",
        "--data.frames_per_batch=512", "--data.num_envs=2", "--model.ppo.minibatch_size=128", "--model.ppo.epochs=1",
        "--eval.eval_every_frames=512", "--eval.episodes=1", "--data.val_episodes=1",
        f"--trainer.default_root_dir={root}", f"--trainer.precision={precision}", *([] if logger else ["--trainer.logger=false"]))
    assert [e["frames"] for e in json.loads((root / "eval_history.json").read_text())] == [512, 1024]
    assert (root / "checkpoints" / "last.ckpt").is_file()
    if logger:  # the logger follows the run folder; the config goes beside its logs
        assert (root / "version_0" / "config.yaml").is_file() and list((root / "version_0").glob("events.out.tfevents.*"))
    assert {p.name for p in root.iterdir()} == {"checkpoints", "eval_history.json", "version_0" if logger else "config.yaml"}


def test_checkpoints_that_cannot_be_resumed_are_refused_in_one_line(tmp_path):
    """Missing, truncated, not a checkpoint, another env, another model class; and a damaged
    last.ckpt names the newest intact checkpoint beside it."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    intact = folder / "best.ckpt"
    intact.write_bytes((ROOT / "experts" / "inverted_pendulum.ckpt").read_bytes())
    (folder / "last.ckpt").write_bytes(intact.read_bytes()[:2000])  # newer, cut short
    cases = {
        str(tmp_path / "missing.ckpt"): "no such file",
        str(folder / "last.ckpt"): f"truncated, damaged .* --ckpt_path {intact}$",
        "configs/hopper.yaml": "cannot be read as a checkpoint",
        "experts/hopper.ckpt": "trained on Hopper-v5, this run uses InvertedPendulum-v5; pass --data.env_id Hopper-v5",
        "last": f"last.ckpt cannot be read .* --ckpt_path {intact}$",
    }
    for ckpt, message in cases.items():
        proc = run("fit", "--config", "experts/inverted_pendulum.yaml", f"--trainer.default_root_dir={tmp_path}",
                   "--trainer.logger=false", f"--ckpt_path={ckpt}", check=False)
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode != 0 and "Traceback" not in proc.stderr and re.search(message, last), (ckpt, proc.stderr[-2000:])
    proc = run("fit", "--config", "ant.yaml", "--ckpt_path=experts/ant.ckpt", f"--trainer.default_root_dir={tmp_path}", check=False)
    assert "holds a SACModule, this run trains a GAILModule; pass --model SACModule" in proc.stderr.splitlines()[-1]
    # An expert trained as a GAILModule with the env reward is the PPOModule it was.
    proc = run("fit", "--config", "hopper.yaml", "--ckpt_path=experts/hopper.ckpt", f"--trainer.default_root_dir={tmp_path}", check=False)
    assert "holds a PPOModule, this run trains a GAILModule; pass --model PPOModule" in proc.stderr.splitlines()[-1]
