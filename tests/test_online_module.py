"""What every module trained on rollout batches shares: guarded updates and precision checks."""

import pytest
import torch
from conftest import build, fit
from lightning.pytorch.plugins import MixedPrecision

from gail_lightning.errors import TrainingDivergedError, UserInputError


def test_nan_in_a_loss_stops_the_run_and_saves_its_state(demo_file, tmp_path):
    module, data = build(demo_file)
    data.expert["observation"][:] = float("nan")  # past the loader's checks, as corrupted memory would be
    with pytest.raises(TrainingDivergedError, match="discriminator loss became nan after 0 frames"):
        fit(module, data, tmp_path)
    saved = torch.load(tmp_path / "diverged.ckpt", weights_only=False)
    assert int(saved["state_dict"]["frames"]) == 0


def test_a_grad_scaler_is_refused_before_training(demo_file, tmp_path):
    # On a GPU, 16-mixed brings a GradScaler; the CPU plugin takes one explicitly.
    module, data = build(demo_file)
    scaler = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
    with pytest.raises(UserInputError, match="use --trainer.precision bf16-mixed or 32-true"):
        fit(module, data, tmp_path, plugins=[scaler])
    assert int(module.frames) == 0
