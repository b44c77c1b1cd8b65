"""The DataModule: env sizes and the shipped demonstrations each config names."""

import pytest
import yaml
from conftest import ROOT

from gail_lightning.data import CollectorDataModule


@pytest.mark.parametrize(
    "config", sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml")
                     if yaml.safe_load(p.read_text())["data"].get("demos"))
)
def test_every_imitation_config_loads_its_shipped_demos(config, monkeypatch):
    monkeypatch.chdir(ROOT)
    data = CollectorDataModule(**yaml.safe_load((ROOT / config).read_text())["data"])
    assert data.demonstrations.num_episodes == data.hparams.num_trajectories
