"""A callback for the DDP test: each rank saves what it ended the fit with."""

from pathlib import Path

import lightning as L
import torch


class RankDump(L.Callback):
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        torch.save(
            {
                "state_dict": pl_module.state_dict(),
                "world_size": trainer.world_size,
                "observation": trainer.datamodule.rollouts.state_dict()["workers"][0]["carrier"]["observation"],
            },
            self.folder / f"rank{trainer.global_rank}.pt",
        )
