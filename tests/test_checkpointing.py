import lightning as L
import pytest
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

from gail_lightning.checkpointing import AtomicCheckpointIO, LastCheckpoint


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


@pytest.mark.parametrize("every_seconds, saves", [(0.0, [1, 2, 3]), (3600.0, [3])])
def test_last_checkpoint_saves_on_its_timer_and_once_at_the_end(tmp_path, every_seconds, saves):
    """Timed saves after batches, plus one at the end unless the last batch was just saved."""
    saved_at: list[int] = []

    class Counting(LastCheckpoint):
        def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
            saved_at.append(trainer.global_step)
            super()._save_checkpoint(trainer, filepath)

    trainer = L.Trainer(
        max_steps=3, callbacks=[Counting(dirpath=tmp_path, every_seconds=every_seconds)],
        logger=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0,
    )
    trainer.fit(BoringModel())
    assert saved_at == saves
    assert (tmp_path / "last.ckpt").exists()
