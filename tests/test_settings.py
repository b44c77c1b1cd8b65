"""Settings grouped by role, and the flat names of older configs and checkpoints."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from gail_lightning.cli import refuse_old_model_names
from gail_lightning.errors import UserInputError
from gail_lightning.module import GAILModule
from gail_lightning.settings import PPO_CLASS, RENAMED, upgrade_hparams

ROOT = Path(__file__).resolve().parents[1]

FLAT = {"_class_path": "gail_lightning.GAILModule", "reward": "survival", "gamma": 0.9,
        "policy_lr": 1e-3, "ppo_epochs": 3, "minibatch_size": 128, "clip_epsilon": 0.1,
        "entropy_coeff": 0.01, "critic_coeff": 0.4, "max_kl": 0.02, "cg_damping": 0.2,
        "disc_lr": 1e-4, "disc_steps": 2, "disc_batch_size": 64, "grad_penalty": 10.0,
        "bc_pretrain_steps": 100, "bc_lr": 3e-3}


def test_flat_gail_settings_move_into_their_groups_and_build_the_same_module():
    upgraded = upgrade_hparams(FLAT)
    assert upgraded["ppo"] == {"lr": 1e-3, "epochs": 3, "minibatch_size": 128, "clip_epsilon": 0.1,
                               "entropy_coeff": 0.01, "critic_coeff": 0.4}
    assert upgraded["trpo"] == {"max_kl": 0.02, "cg_damping": 0.2}
    assert upgraded["disc"] == {"lr": 1e-4, "steps": 2, "batch_size": 64, "grad_penalty": 10.0}
    assert upgraded["bc"] == {"steps": 100, "lr": 3e-3, "batch_size": 64}  # the warm start drew D's batch size
    assert upgraded["gamma"] == 0.9 and not set(upgraded) & set(RENAMED)
    upgraded.pop("_class_path")
    module = GAILModule(4, [-1.0], [1.0], **upgraded)
    assert (module.ppo.epochs, module.disc.batch_size, module.bc.steps, module.trpo.max_kl) == (3, 64, 100, 0.02)


def test_an_env_reward_gail_module_becomes_the_ppo_module_it_was():
    upgraded = upgrade_hparams({k: v for k, v in FLAT.items() if k != "_class_path"} | {"reward": "env", "absorbing": False})
    assert upgraded["_class_path"] == PPO_CLASS
    assert not {"reward", "absorbing", "disc", "bc"} & set(upgraded)
    assert upgraded["ppo"]["epochs"] == 3


def test_other_models_settings_are_left_alone_even_under_an_old_gail_name():
    """A user's own OnlineModule may well have an ``entropy_coeff`` of its own."""
    theirs = {"_class_path": "my_package.MyModule", "entropy_coeff": 0.1, "lr": 3e-4}
    upgraded = upgrade_hparams(theirs)
    assert upgraded == theirs and upgraded is not theirs


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_each_old_flag_and_config_key_names_its_new_place(old, tmp_path):
    with pytest.raises(UserInputError, match=rf"--model\.{old} is now --model\.{RENAMED[old]} "):
        refuse_old_model_names([f"--model.{old}=1"])
    config = tmp_path / "old.yaml"
    config.write_text(yaml.safe_dump({"model": {"init_args": {old: 1}}}))
    with pytest.raises(UserInputError, match=rf"--model\.{old} is now --model\.{RENAMED[old]} "):
        refuse_old_model_names(["fit", "--config", str(config)])


def test_a_config_file_that_is_not_yaml_is_left_to_jsonargparse(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    refuse_old_model_names(["--config", str(broken), "--config", str(tmp_path / "missing.yaml")])


def test_every_shipped_config_uses_todays_names():
    for path in (ROOT / "configs").rglob("*.yaml"):
        refuse_old_model_names(["--config", str(path)])


def test_a_gail_checkpoint_with_flat_settings_resumes_from_its_path(tmp_path):
    """The CLI reads a named checkpoint's settings into the config: the old names upgraded."""
    common = [sys.executable, "train.py", "fit", "--config", "inverted_pendulum.yaml",
              "--data.frames_per_batch=512", "--model.ppo.minibatch_size=128", "--model.ppo.epochs=1",
              "--eval.episodes=1", "--data.val_episodes=1", "--trainer.logger=false"]
    first = subprocess.run([*common, "--data.total_frames=512", f"--trainer.default_root_dir={tmp_path / 'a'}"],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    grouped = checkpoint["hyper_parameters"]
    flat = {k: v for k, v in grouped.items() if k not in ("ppo", "trpo", "disc", "bc")}
    for old, new in RENAMED.items():
        group, name = new.split(".")
        flat[old] = grouped[group][name]
    flat["disc_lr"] = 5e-5  # not the config's: the checkpoint's settings are the ones resumed
    checkpoint["hyper_parameters"] = flat
    torch.save(checkpoint, tmp_path / "old.ckpt")
    second = subprocess.run([*common, "--data.total_frames=1024", f"--ckpt_path={tmp_path / 'old.ckpt'}",
                             f"--trainer.default_root_dir={tmp_path / 'b'}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(resumed["state_dict"]["frames"]) == 1024
    assert resumed["hyper_parameters"]["disc"] == grouped["disc"] | {"lr": 5e-5}
