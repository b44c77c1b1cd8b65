"""Soft actor-critic on the true env reward: the off-policy expert trainer.

PPO reaches the Hopper expert in well under a million frames on two cores, but not the
HalfCheetah, Ant or Humanoid targets; SAC's replay of every transition many times does.
It trains the experts whose demonstrations GAIL imitates, and is the generator of
``DACModule`` (GAIL on the replay buffer).

The update is TorchRL's ``SACLoss`` (v2: twin Q, no value network, learned temperature)
written over the networks in plain torch, as ``ppo.PPOLoss`` is: a 256-transition
HalfCheetah update took 20.7 ms with SACLoss (its TensorDict and vmap plumbing, plain Adam,
``ReplayBuffer.sample``) and 13.8 ms this way (``benchmarks/sac_update.py``, one thread, on
two cores shared with other jobs). ``tests/test_sac.py`` holds the two to the same losses
and the same step.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from lightning.pytorch.utilities import rank_zero_warn
from tensordict import TensorDict, TensorDictBase
from torch import nn
from torchrl.data import LazyMemmapStorage, ReplayBuffer
from torchrl.modules import ValueOperator

from gail_lightning.errors import UserInputError, require_positive_model_args
from gail_lightning.networks import RunningNorm, SquashedGaussian, make_actor, make_qvalue
from gail_lightning.online_module import FUSED_ADAM, OnlineModule, fuse_saved_adam

# What a transition keeps in the replay buffer (the collector batch holds more).
TRANSITION_KEYS = (
    "observation", "action", ("next", "observation"), ("next", "reward"),
    ("next", "done"), ("next", "terminated"),
)
LOGGED = ("loss_actor", "loss_qvalue", "alpha", "entropy")


class TwinLinear(nn.Module):
    """One layer of both Q networks: their weights stacked (``[2, out, in]``), applied to
    ``[2, batch, in]`` in one batched matmul.

    Initialized as TorchRL's ``SACLoss`` made its two copies of a network (each weight drawn
    uniformly between the smallest and largest of ``linear``'s, in the same order), so a run
    starts from the networks the shipped experts started from.
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight, self.bias = (
            nn.Parameter(p.detach().expand(2, *p.shape).clone().uniform_(p.min().item(), p.max().item()))
            for p in (linear.weight, linear.bias)
        )

    def forward(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """``frozen``: gradients reach ``x`` only, not the weights."""
        weight, bias = (self.weight.detach(), self.bias.detach()) if frozen else (self.weight, self.bias)
        return torch.baddbmm(bias.unsqueeze(1), x, weight.mT)


class TwinQ(nn.Sequential):
    """SAC's two Q(s, a) networks: a ``make_qvalue`` network with ``TwinLinear`` layers.

    Its parameters have the names (less the ``loss.qvalue_network_params.module.`` prefix),
    shapes and order of ``SACLoss``'s stacked Q parameters, so old checkpoints and their Adam
    states load.
    """

    def __init__(self, qvalue: ValueOperator) -> None:
        super().__init__(*(TwinLinear(m) if isinstance(m, nn.Linear) else m for m in qvalue.module))

    def forward(self, observation: torch.Tensor, action: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """Both networks' Q values, ``[2, batch]``; ``frozen`` as in ``TwinLinear``."""
        x = torch.cat([observation, action], -1)
        x = x.expand(2, *x.shape)
        for layer in self:
            x = layer(x, frozen) if isinstance(layer, TwinLinear) else layer(x)
        return x.squeeze(-1)


class DiskReplayBuffer:
    """The replay buffer as memory-mapped files in the run folder (TorchRL's ``ReplayBuffer``
    over a ``LazyMemmapStorage``), which a checkpoint restores exactly without copying it.

    A save records the write count, and ``ReplayBuffer.dumps`` into the storage's own folder
    writes metadata only (about 2-20 ms, where copying a million transitions of Humanoid's
    full 348-number observations would write 2.8 GB at every save). A resumed run must not see what the interrupted run wrote
    after the save: entries past the saved length are never sampled and are written again
    in order, but once the ring is full each transition overwrites one that the save may
    hold. So the overwritten one first moves to the same slot of ``undo/`` (the ring's
    previous generation) and ``restore`` moves it back, checking every slot by the
    ``write_index`` each transition carries. Exact for a checkpoint less than one buffer of
    frames old (an older one has lost transitions overwritten twice, which ``restore``
    reports); the cost is a second write of each transition once the buffer is full (under
    1 ms per 256 Humanoid transitions), and the disk of two buffers.

    Args:
        folder: where the files live (``<run folder>/replay_buffer``); git ignores it.
        capacity: transitions held; the oldest is overwritten first.
        run: names the run that writes the folder, so that the checkpoint of another run
            that used the same folder is not restored from it.
    """

    def __init__(self, folder: Path, capacity: int, run: str) -> None:
        self.folder = folder.absolute()
        self.capacity = capacity
        self.run = run
        self.buffer = ReplayBuffer(storage=self._storage("storage"))
        self.undo = self._storage("undo")

    def _storage(self, name: str) -> LazyMemmapStorage:
        return LazyMemmapStorage(self.capacity, scratch_dir=self.folder / name, existsok=True)

    def __len__(self) -> int:
        return len(self.buffer)

    def extend(self, transitions: TensorDictBase) -> None:
        """Append ``transitions``, after moving those they overwrite to ``undo/``."""
        if self.buffer.write_count == 0:  # a new run: it disowns what the folder held
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / ".gitignore").write_text("*\n")  # wherever the run folder is
            (self.folder / "run.json").write_text(json.dumps({"run": self.run}))
        index = torch.arange(self.buffer.write_count, self.buffer.write_count + len(transitions))
        transitions["write_index"] = index
        overwritten = index[index >= self.capacity] % self.capacity
        if len(overwritten):
            self.undo.set(overwritten, self.buffer.storage[overwritten])
        self.buffer.extend(transitions)

    def sample(self, batch_size: int) -> TensorDictBase:
        """``batch_size`` transitions drawn uniformly with replacement. Indexes the storage
        itself: ``ReplayBuffer.sample`` spent 1-2 ms per call on its own machinery."""
        return self.buffer.storage[torch.randint(len(self.buffer), (batch_size,))]

    def save(self) -> dict[str, int | str]:
        """What a checkpoint keeps of the buffer: its run and write count."""
        self.buffer.dumps(self.folder)  # into the storage's own folder: metadata only
        return {"run": self.run, "writes": self.buffer.write_count}

    def restore(self, state: dict[str, int | str]) -> None:
        """The buffer as it was when ``state`` was saved, from the files in ``folder``."""
        path = self.folder / "run.json"
        if not path.exists() or json.loads(path.read_text())["run"] != state["run"]:
            rank_zero_warn(f"{self.folder} does not hold this checkpoint's replay buffer: "
                           "it starts empty and refills before the updates resume.")
            return
        self.run = state["run"]
        self.buffer.loads(self.folder)
        writes, length = state["writes"], min(state["writes"], self.capacity)
        self.buffer.writer.load_state_dict({"_cursor": writes % self.capacity, "_write_count": writes})
        self.buffer.storage._len = length  # no public setter; the files may be newer than the save
        slots = torch.arange(length)
        expected = slots + self.capacity * ((writes - 1 - slots) // self.capacity)  # last write per slot
        files = TensorDict.load_memmap(self.folder / "storage")  # the storage's files, mapped again
        stale = slots[files["write_index"][:length] != expected]
        if len(stale) and (self.folder / "undo" / "meta.json").exists():
            undo = TensorDict.load_memmap(self.folder / "undo")
            kept = undo["write_index"][stale] == expected[stale]
            files[stale[kept]] = undo[stale[kept]]
            stale = stale[~kept]
        if len(stale):
            rank_zero_warn(
                f"{len(stale)} of the checkpoint's {length} replay-buffer transitions were overwritten "
                "twice since it was saved; the resumed run keeps newer ones in their place."
            )


class SACModule(OnlineModule):
    """Policy, twin Q networks and entropy temperature, trained by SAC from a replay buffer.

    Each training step adds one collector batch to the buffer and, once ``learning_starts``
    frames are in, takes ``updates_per_frame`` gradient steps per new frame on sampled
    minibatches, each followed by a soft update of the target Q networks.

    The buffer lives in ``<trainer.default_root_dir>/replay_buffer`` (``DiskReplayBuffer``;
    one folder per rank under DDP), and ``fit --ckpt_path`` restores it as it was at the
    checkpoint, so a resumed run continues as the uninterrupted one would have. The folder
    stays when the run ends, for ``fit --ckpt_path last`` to extend it; delete it to free
    the disk.

    Args:
        obs_dim: observation size (linked from the DataModule by the CLI).
        action_low: lower bound of each action dimension (linked from the DataModule).
        action_high: upper bound of each action dimension (linked from the DataModule).
        hidden_sizes: hidden layer widths of the policy and Q networks (ReLU).
        lr: Adam learning rate of policy and Q networks.
        alpha_lr: Adam learning rate of the entropy temperature.
        gamma: discount factor.
        tau: target-network soft-update rate.
        batch_size: transitions per gradient step.
        buffer_size: replay buffer capacity in transitions (on disk, twice over, once full).
        learning_starts: frames collected before the first update.
        updates_per_frame: gradient steps per collected frame.
        reward_scale: factor on the reward SAC learns from (the env's; D's in ``DACModule``).
    """

    def __init__(
        self,
        obs_dim: int,
        action_low: Sequence[float],
        action_high: Sequence[float],
        hidden_sizes: Sequence[int] = (256, 256),
        lr: float = 3e-4,
        alpha_lr: float = 3e-4,
        gamma: float = 0.99,
        tau: float = 0.005,
        batch_size: int = 256,
        buffer_size: int = 1_000_000,
        learning_starts: int = 10_000,
        updates_per_frame: float = 1.0,
        reward_scale: float = 1.0,
    ) -> None:
        super().__init__()
        require_positive_model_args(lr=lr, alpha_lr=alpha_lr, batch_size=batch_size,
                                    buffer_size=buffer_size, updates_per_frame=updates_per_frame)
        self.save_hyperparameters()
        # Kept at identity: a normalizer that moved would change what replayed observations mean.
        self.obs_norm = RunningNorm(obs_dim)
        self.actor = make_actor(self.obs_norm, obs_dim, action_low, action_high, hidden_sizes,
                                state_dependent_scale=True, activation=nn.ReLU)
        self.policy = SquashedGaussian(self.actor)  # the actor's networks, nothing of its own
        self.qvalue = TwinQ(make_qvalue(obs_dim, len(action_low), hidden_sizes))
        self.target_qvalue = copy.deepcopy(self.qvalue).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.zeros(()))  # alpha starts at 1
        self.target_entropy = -float(len(action_low))
        self.buffer: DiskReplayBuffer | None = None  # made in the run folder by ``setup``

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit":
            trainer = self.trainer
            folder = Path(trainer.default_root_dir) / "replay_buffer"
            if trainer.world_size > 1:
                folder = folder / f"rank{trainer.global_rank}"
            if self.frames_per_batch is not None and self.hparams.buffer_size < self.frames_per_batch:
                raise UserInputError(
                    f"--model.buffer_size ({self.hparams.buffer_size}) is smaller than one batch "
                    f"(--data.frames_per_batch {self.frames_per_batch}); make it at least that.")
            run = trainer.strategy.broadcast(uuid.uuid4().hex)
            self.buffer = DiskReplayBuffer(folder, self.hparams.buffer_size, run)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if self.buffer is not None:
            checkpoint["replay_buffer"] = self.buffer.save()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Restores the replay buffer (in ``fit``), and reads checkpoints written before this
        module left TorchRL's ``SACLoss`` (2026-12): its Q parameters were
        ``loss.[target_]qvalue_network_params.module.*``, and it also held copies of the
        actor's parameters, of gamma and of the target entropy, which this module derives.
        Adam states saved unfused resume fused (``fuse_saved_adam``)."""
        state = checkpoint["state_dict"]
        for old in [k for k in state if k.startswith("loss.")]:
            value = state.pop(old)
            for prefix, new in (("loss.qvalue_network_params.module.", "qvalue."),
                                ("loss.target_qvalue_network_params.module.", "target_qvalue."),
                                ("loss.log_alpha", "log_alpha")):
                if old.startswith(prefix):
                    state[new + old[len(prefix):]] = value
        fuse_saved_adam(checkpoint)
        if self.buffer is not None and "replay_buffer" in checkpoint:
            self.buffer.restore(checkpoint["replay_buffer"])
        elif self.buffer is not None:
            rank_zero_warn("The checkpoint predates replay buffers on disk: the buffer starts empty "
                           "and refills for --model.learning_starts frames before the updates resume.")

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        actor = torch.optim.Adam(self.actor.parameters(), lr=self.hparams.lr, **FUSED_ADAM)
        qvalue = torch.optim.Adam(self.qvalue.parameters(), lr=self.hparams.lr, **FUSED_ADAM)
        alpha = torch.optim.Adam([self.log_alpha], lr=self.hparams.alpha_lr, **FUSED_ADAM)
        return [actor, qvalue, alpha]

    def training_step(self, dataloader_iter: Iterator) -> None:
        batch = self.next_batch(dataloader_iter)
        transitions = batch.reshape(-1).select(*TRANSITION_KEYS).clone()
        transitions["next", "reward"] = transitions["next", "reward"] * self.hparams.reward_scale
        self.buffer.extend(transitions.cpu())
        self.count_frames(batch.numel())
        if len(self.buffer) >= self.hparams.learning_starts:
            updates = max(1, round(batch.numel() * self.hparams.updates_per_frame))
            self.log_dict(self._sac_steps(updates), batch_size=1)
        self.log_dict(self.episode_metrics(batch), prog_bar=True, batch_size=1)

    def _sac_steps(self, updates: int) -> dict[str, torch.Tensor]:
        """``updates`` SAC gradient steps on replayed minibatches; returns mean losses."""
        history, optimizers = [], self.optimizers()[:3]  # actor, Q networks, temperature
        for _ in range(updates):
            losses = self.losses(self.replayed())
            loss = losses["loss_actor"] + losses["loss_qvalue"] + losses["loss_alpha"]
            self.update(loss, "SAC loss", *optimizers)
            self.update_targets()
            history.append(torch.stack([losses[k].detach() for k in LOGGED]))
        return {f"sac/{k}": v for k, v in zip(LOGGED, torch.stack(history).mean(0))}

    def replayed(self) -> TensorDictBase:
        """A minibatch of ``batch_size`` replayed transitions on this module's device, with
        the reward SAC learns from (here the env's, as stored; D's in ``DACModule``)."""
        return self.buffer.sample(self.hparams.batch_size).to(self.device)

    def losses(self, batch: TensorDictBase) -> dict[str, torch.Tensor]:
        """``SACLoss``'s terms on a minibatch (its order of random draws too): squared TD
        errors of both Q networks towards r + γ(1 − terminated)(min target Q − α log π) at a
        fresh next action, summed over the two; α log π − min Q with the Q networks frozen;
        and the temperature's −log α (log π + target entropy). α is ``exp(log_alpha)``
        without gradient."""
        observation, next_observation = batch["observation"], batch["next", "observation"]
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_action, next_log_prob = self.policy.rsample_and_log_prob(*self.policy(next_observation))
            next_q = self.target_qvalue(next_observation, next_action)
            next_value = (next_q - alpha * next_log_prob).min(0).values
            not_terminated = ~batch["next", "terminated"].squeeze(-1)
            target = batch["next", "reward"].squeeze(-1) + self.hparams.gamma * not_terminated * next_value
        loss_qvalue = (self.qvalue(observation, batch["action"]) - target).pow(2).sum(0).mean()
        action, log_prob = self.policy.rsample_and_log_prob(*self.policy(observation))
        min_q = self.qvalue(observation, action, frozen=True).min(0).values
        loss_actor = (alpha * log_prob - min_q).mean()
        loss_alpha = (-self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
        return {"loss_actor": loss_actor, "loss_qvalue": loss_qvalue, "loss_alpha": loss_alpha,
                "alpha": alpha, "entropy": -log_prob.detach().mean()}

    @torch.no_grad()
    def update_targets(self) -> None:
        """Move each target Q parameter ``tau`` of the way to the online one (polyak)."""
        torch._foreach_lerp_(list(self.target_qvalue.parameters()), list(self.qvalue.parameters()),
                             self.hparams.tau)
