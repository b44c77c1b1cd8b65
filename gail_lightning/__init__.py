"""GAIL for continuous control, as a PyTorch Lightning trainer over TorchRL collectors."""

from gail_lightning.bc import BCModule
from gail_lightning.dac import DACModule
from gail_lightning.data import CollectorDataModule
from gail_lightning.module import GAILModule
from gail_lightning.ppo_module import PPOModule
from gail_lightning.sac import SACModule

__all__ = ["BCModule", "CollectorDataModule", "DACModule", "GAILModule", "PPOModule", "SACModule"]
