import pytest
import torch

from gail_lightning.checkpointing import AtomicCheckpointIO


def test_failed_write_leaves_the_previous_checkpoint_intact(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"frames": 512}, path)
    with pytest.raises(Exception):
        io.save_checkpoint({"frames": 1024, "broken": lambda: None}, path)  # cannot be pickled
    assert torch.load(path, weights_only=False) == {"frames": 512}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_successful_write_replaces_the_file(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"frames": 512}, path)
    io.save_checkpoint({"frames": 1024}, path)
    assert io.load_checkpoint(path, weights_only=False) == {"frames": 1024}
