"""Behavioral cloning: the baseline every GAIL comparison needs, and GAIL's warm start."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from tensordict import TensorDict
from torchrl.modules import ProbabilisticActor
from torchrl.objectives import BCLoss

from gail_lightning.errors import UserInputError, require_positive_model_args
from gail_lightning.networks import RunningNorm, make_actor
from gail_lightning.online_module import OnlineModule


def clone_expert(
    actor: ProbabilisticActor, expert: TensorDict, steps: int, batch_size: int, lr: float
) -> torch.Tensor:
    """``steps`` Adam steps of maximum likelihood of expert actions; returns the last loss.

    A plain optimizer, not a Lightning one: GAIL's warm start runs this once before
    training, and its optimizer state is not worth keeping.
    """
    loss_fn = BCLoss(actor)
    opt = torch.optim.Adam(actor.parameters(), lr=lr)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        loss = loss_fn(expert[torch.randint(len(expert), (batch_size,))])["loss_bc"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.detach()


class BCModule(OnlineModule):
    """The GAIL policy network fitted to the demonstrations by maximum likelihood.

    BC never steps the env to learn, only to evaluate: its ``frames`` count expert samples
    passed through the gradient (``data.frames_per_batch`` per training step), so
    ``data.total_frames``, ``--eval.eval_every_frames`` and checkpoints keep their meaning
    as a budget of samples seen. Observations are normalized with the demonstrations'
    statistics, fitted once before training.

    Args:
        obs_dim: observation size (linked from the DataModule by the CLI).
        action_low: lower bound of each action dimension (linked from the DataModule).
        action_high: upper bound of each action dimension (linked from the DataModule).
        hidden_sizes: hidden layer widths of the policy (tanh), as in GAIL.
        lr: Adam learning rate.
        batch_size: expert pairs per gradient step.
        weight_decay: Adam weight decay (BC overfits a few trajectories quickly).
    """

    def __init__(
        self,
        obs_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        hidden_sizes: Sequence[int] = (100, 100),
        lr: float = 1e-3,
        batch_size: int = 256,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        require_positive_model_args(lr=lr, batch_size=batch_size)
        self.save_hyperparameters()
        self.obs_norm = RunningNorm(obs_dim)
        self.actor = make_actor(self.obs_norm, obs_dim, action_low, action_high, hidden_sizes)
        self.loss = BCLoss(self.actor)
        self.expert: TensorDict | None = None

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = self.trainer.datamodule
        if datamodule.expert is None:
            raise UserInputError("BCModule learns from demonstrations: pass --data.demos <file>.")
        self.expert = datamodule.expert
        if self.obs_norm.count == 0:  # a resumed run restores the fitted statistics
            self.obs_norm.update(self.expert["observation"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.actor.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )

    def training_step(self, dataloader_iter: Iterator) -> None:
        # The collector's iterator is never advanced: BC learns from the demonstrations alone.
        frames = self.frames_per_batch
        size = self.hparams.batch_size
        losses = []
        for _ in range(max(1, frames // size)):
            sample = self.expert[torch.randint(len(self.expert), (size,))].to(self.device)
            loss = self.loss(sample)["loss_bc"]
            self.update(loss, "BC loss", self.optimizers())
            losses.append(loss.detach())
        self.count_frames(frames)
        self.log_dict({"loss/bc": torch.stack(losses).mean(), "frames": self.frames.float()},
                      prog_bar=True, batch_size=1)
