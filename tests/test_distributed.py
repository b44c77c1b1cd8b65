"""DDP on CPU processes (gloo): ranks in step, budgets and statistics over all ranks."""

import json

import pytest
import torch
from conftest import frames_in, run


@pytest.mark.parametrize("optimizer", ["ppo", "trpo"])
def test_ddp_on_two_cpu_processes_keeps_the_ranks_in_step(demo_file, tmp_path, optimizer):
    """gloo, 2 ranks: own envs per rank, gradients and observation statistics averaged,
    the frame budget over both ranks, evaluation and checkpoints from rank 0."""
    run(
        "fit", "--config", "inverted_pendulum.yaml", f"--data.demos={demo_file}",
        "--data.total_frames=2048", "--data.frames_per_batch=512", "--data.num_envs=2",
        "--model.ppo.minibatch_size=128", "--model.ppo.epochs=2", f"--model.policy_optimizer={optimizer}",
        "--eval.eval_every_frames=1024", "--eval.episodes=1", "--data.val_episodes=2",
        f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
        "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu",
        "--trainer.callbacks+=tests.rank_dump.RankDump", f"--trainer.callbacks.folder={tmp_path}",
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    for key, value in ranks[0]["state_dict"].items():
        assert torch.equal(value, ranks[1]["state_dict"][key]), f"{key} differs between ranks"
    state = ranks[0]["state_dict"]
    assert int(state["frames"]) == 2048  # 2 batches of 512 on each of 2 ranks
    assert int(state["obs_norm.count"]) == 2048  # statistics over both ranks' frames
    assert not torch.equal(ranks[0]["observation"], ranks[1]["observation"]), "ranks share their envs"
    assert frames_in(tmp_path / "checkpoints" / "last.ckpt") == 2048
    history = json.loads((tmp_path / "eval_history.json").read_text())
    assert [h["frames"] for h in history] == [1024, 2048]
