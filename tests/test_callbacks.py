"""Callbacks: the evaluation record and the frames progress bar's postfix."""

import json
from types import SimpleNamespace

from conftest import ENV_ID, fit

from gail_lightning.callbacks import ExpertScore, FramesProgressBar
from gail_lightning.data import CollectorDataModule
from gail_lightning.module import GAILModule
from gail_lightning.settings import (
    DiscriminatorSettings,
    PPOSettings,
)


def test_evaluation_record_goes_into_a_run_folder_nothing_has_made_yet(demo_file, tmp_path):
    data = CollectorDataModule(env_id=ENV_ID, demos=str(demo_file), frames_per_batch=256, total_frames=512,
                               num_envs=2, val_episodes=1)
    module = GAILModule(data.obs_dim, data.action_low, data.action_high, ppo=PPOSettings(epochs=1, minibatch_size=64),
                        disc=DiscriminatorSettings(steps=1, batch_size=64))
    root = tmp_path / "not" / "yet"
    fit(module, data, root, callbacks=[ExpertScore(eval_every_frames=256, episodes=1)], limit_val_batches=0)
    assert [e["frames"] for e in json.loads((root / "eval_history.json").read_text())] == [256, 512]


def postfix(**metrics: float) -> dict:
    trainer = SimpleNamespace(progress_bar_metrics=metrics, loggers=[])
    return FramesProgressBar().get_metrics(trainer, None)


def test_progress_bar_shows_return_and_evaluation_briefly_and_blowups_only_when_there_are_any():
    assert postfix(**{"frames": 20480.0, "train/sim_instabilities": 0.0, "train/episode_return": 1234.56,
                      "eval/return": 3001.2, "eval/normalized_score": 0.9712}) == {"return": "1235", "eval": "0.97"}
    assert postfix(**{"frames": 2048.0, "train/sim_instabilities": 3.0, "eval/return": 80.4}) == {"eval": "80", "sim_blowups": 3}
    assert postfix(**{"loss/bc": 0.12345, "frames": 100.0}) == {"bc_loss": "0.123"}
