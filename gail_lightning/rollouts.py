"""Rollouts: the envs, the collectors and the policy copies that step them, in worker
processes beside the learner or in the training process itself.

One worker is one TorchRL ``Collector`` over ``num_envs`` envs (``envs.make_env``) driven by
an ``ActionSampler`` over its own CPU copy of the actor. ``Rollouts`` talks to every worker
through the same request/reply calls, whether the worker lives in this process
(``num_workers=0``) or in a process of its own, so a run's batches depend on its seed and
settings, never on where or how fast the workers run.

With ``overlap``, batch k+1 is requested, with the weights of the latest update, as soon as
batch k is handed to the learner: the workers step the envs while the learner updates. The
policy lag is then exactly one update (batch k+1 is collected by the weights that produced
batch k's update's input, never by whichever weights happen to be current), so seeded runs
repeat and a checkpoint holds the in-flight batch to resume exactly.
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import multiprocessing.util as mp_util
import signal
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from tensordict import TensorDict
from torch import nn
from torchrl.collectors import Collector

from gail_lightning.env_state import restore, snapshot
from gail_lightning.envs import make_env
from gail_lightning.errors import UserInputError
from gail_lightning.networks import ActionSampler


class RolloutWorker:
    """One collector: ``num_envs`` seeded envs stepped by a CPU copy of the actor.

    ``seed`` seeds the envs (env ``i`` with ``seed + i``) and, in a worker process, the
    torch generator that draws the actions.
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: Mapping[str, Any] | None,
        num_envs: int,
        frames_per_batch: int,
        seed: int,
        actor: nn.Module,
        own_process: bool,
    ) -> None:
        if own_process:
            torch.set_num_threads(1)  # one core per worker; the learner has its own
            torch.manual_seed(seed)
        self.actor = copy.deepcopy(actor).cpu()
        self.env = make_env(env_id, num_envs, seed=seed, env_kwargs=env_kwargs)
        self.collector = Collector(
            self.env,
            ActionSampler(self.actor),
            frames_per_batch=frames_per_batch,
            auto_register_policy_transforms=False,  # the MLP policy needs no env transforms
            track_traj_ids=False,  # unused here; 2.5% of collection time
        )
        self._batches: Iterator[TensorDict] = iter(self.collector)

    def collect(self, weights: dict[str, torch.Tensor]) -> tuple[TensorDict, int]:
        """The next batch, stepped with ``weights``; and the env blow-ups counted so far."""
        self.actor.load_state_dict(weights)
        return next(self._batches), self.instabilities()

    def instabilities(self) -> int:
        return sum(env.instabilities for env in self.env.gym_envs)

    def state(self) -> dict[str, Any]:
        """Env states, the step the collector resumes from, and the action generator."""
        return {
            "envs": snapshot(self.env),
            "carrier": self.collector._carrier.to_dict(),  # the step the collector resumes from
            "torch_rng": torch.get_rng_state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state["envs"] is not None:
            restore(self.env, state["envs"])
            carrier = self.collector._carrier
            saved = TensorDict(state["carrier"], batch_size=carrier.batch_size)
            carrier.update(saved.exclude("collector"))  # trajectory ids: untracked since 2026-12-03
        torch.set_rng_state(state["torch_rng"])

    def close(self) -> None:
        self.collector.shutdown()

    def handle(self, command: str, argument: Any) -> Any:
        return getattr(self, command)(*(() if argument is None else (argument,)))


def _serve(connection: Any, trainer_end: Any, settings: dict[str, Any]) -> None:
    """A worker process: answer requests until ``close``; errors go back as text."""
    # The fork copied the trainer's end of this pipe; closed here, a trainer that dies (even
    # by SIGKILL) shows as EOF below, and the worker exits instead of waiting forever.
    trainer_end.close()
    # Ctrl-C, `kill -- -PGID`, `timeout` and schedulers signal the whole process group; the
    # trainer decides when to stop (GracefulStop), and saving last.ckpt needs this worker's
    # state, so the worker outlives the signal. It ends on ``close``, on EOF, or killed by
    # its ``_Process`` (``end``, or its finalizer when the trainer exits).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        worker = RolloutWorker(**settings, own_process=True)
        connection.send(("ok", None))
        while True:
            command, argument = connection.recv()
            connection.send(("ok", worker.handle(command, argument)))
            if command == "close":
                return
    except (EOFError, ConnectionResetError, BrokenPipeError):  # the trainer is gone
        return
    except Exception:
        connection.send(("error", traceback.format_exc()))


class _Here:
    """A worker in this process, behind the calls a worker process answers."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.worker = RolloutWorker(**settings, own_process=False)
        self._reply: Any = None

    def send(self, command: str, argument: Any = None) -> None:
        self._reply = self.worker.handle(command, argument)

    def recv(self) -> Any:
        return self._reply


class _Process:
    """A worker in a process of its own.

    Forked, as PyTorch's DataLoader workers are: a spawned worker spent 6 s importing
    before its first step. The worker reseeds torch and runs one thread, so nothing it
    inherits decides what it collects.
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        context = mp.get_context("fork")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, self.connection, settings), daemon=True)
        self.process.start()
        child.close()  # so that a worker that dies shows as EOF here, not as a hang
        # Kills the worker when this object is dropped or the trainer (or a DDP rank) exits
        # without ``Rollouts.close``: multiprocessing's exit hook runs it before its SIGTERM,
        # which the worker ignores, and the join that would then wait forever.
        self._kill = mp_util.Finalize(self, _kill, args=(self.process,), exitpriority=0)
        self.recv()  # built, or its error

    def end(self, grace: float = 0.0) -> None:
        """Let the worker exit for up to ``grace`` seconds, then kill it."""
        self.process.join(grace)
        self._kill()

    def send(self, command: str, argument: Any = None) -> None:
        self.connection.send((command, argument))

    def recv(self) -> Any:
        try:
            status, value = self.connection.recv()
        except (EOFError, OSError):
            self.process.join(1.0)  # for its exit code
            raise RuntimeError(f"A rollout worker process died (exit code {self.process.exitcode}).") from None
        if status == "error":
            raise RuntimeError(f"A rollout worker failed:\n{value}")
        return value


def _kill(process: mp.process.BaseProcess) -> None:
    if process.is_alive():
        process.kill()
    process.join()


class Rollouts:
    """Training batches ``[num_workers * num_envs, frames_per_batch / (num_workers * num_envs)]``
    from ``num_workers`` collector processes (0: one collector in this process).

    Args:
        env_id, env_kwargs: the env, as ``envs.make_env`` takes them.
        num_envs: envs per worker.
        frames_per_batch: frames per batch, summed over workers and envs.
        num_workers: collector processes; 0 collects in the calling process.
        overlap: collect the next batch while the learner updates on this one (one update
            of policy lag); otherwise every batch is collected by the latest weights.
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: Mapping[str, Any] | None,
        num_envs: int,
        frames_per_batch: int,
        num_workers: int,
        overlap: bool,
    ) -> None:
        self.settings = {"env_id": env_id, "env_kwargs": env_kwargs, "num_envs": num_envs,
                         "frames_per_batch": frames_per_batch // max(1, num_workers)}
        self.num_workers = num_workers
        self.overlap = overlap
        self._workers: list[_Here | _Process] = []
        self._weights: dict[str, torch.Tensor] | None = None
        self._in_flight = False
        self._pending: TensorDict | None = None
        self._instabilities = [0] * max(1, num_workers)

    def start(self, actor: nn.Module, seed: int) -> None:
        """Build the workers around a copy of ``actor``; worker ``w`` seeds its envs with
        ``seed + w * num_envs`` onwards, so no two envs share a seed."""
        self.close()
        actor = copy.deepcopy(actor).cpu()  # a forked worker must not touch CUDA
        self._weights = _cpu_weights(actor)
        kind = _Process if self.num_workers > 0 else _Here
        envs = self.settings["num_envs"]
        self._workers = [
            kind({**self.settings, "seed": seed + w * envs, "actor": actor}) for w in range(max(1, self.num_workers))
        ]

    def sync_weights(self, actor: nn.Module) -> None:
        """Take ``actor``'s current weights for the next batch requested from the workers."""
        self._weights = _cpu_weights(actor)

    def __iter__(self) -> Rollouts:
        return self

    def __next__(self) -> TensorDict:
        if self._pending is None:
            if not self._in_flight:
                self._request()
            self._pending = self._receive()
        batch, self._pending = self._pending, None
        if self.overlap:
            self._request()
        return batch

    def _request(self) -> None:
        for worker in self._workers:
            worker.send("collect", self._weights)
        self._in_flight = True

    def _receive(self) -> TensorDict:
        try:
            replies = [worker.recv() for worker in self._workers]
        finally:
            self._in_flight = False  # also after a failure: close() must not wait on a reply
        self._instabilities = [count for _, count in replies]
        return torch.cat([batch for batch, _ in replies], dim=0)

    @property
    def instabilities(self) -> int:
        """Env steps cut short so far because the simulation blew up (see ``SimulationGuard``)."""
        return sum(self._instabilities)

    def state_dict(self) -> dict[str, Any]:
        """Every worker's state and, with ``overlap``, the batch in flight (collected first)."""
        if not self._workers:
            return {}
        if self._in_flight:
            self._pending = self._receive()
        for worker in self._workers:
            worker.send("state")
        return {
            "workers": [worker.recv() for worker in self._workers],
            "pending": None if self._pending is None else {
                "batch": self._pending.to_dict(), "batch_size": list(self._pending.batch_size)},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a ``state_dict`` taken with the same number of workers and envs."""
        if "workers" not in state:
            raise UserInputError(
                "The checkpoint's collector state predates this version (2026-12-01), so the run "
                "cannot resume exactly; start afresh (its policy still evaluates and records demos)."
            )
        saved = state["workers"]
        if len(saved) != len(self._workers):
            raise UserInputError(
                f"The checkpoint was collecting with {len(saved)} workers but --data.num_workers "
                f"is {self.num_workers}; resume with --data.num_workers {len(saved)}."
            )
        for worker, worker_state in zip(self._workers, saved):
            envs = worker_state["envs"]
            if envs is not None and len(envs) != self.settings["num_envs"]:
                raise UserInputError(
                    f"The checkpoint was collecting with {len(envs)} envs but --data.num_envs is "
                    f"{self.settings['num_envs']}; resume with --data.num_envs {len(envs)}."
                )
            worker.send("restore", worker_state)
            worker.recv()
        pending = state["pending"]
        self._pending = None if pending is None else TensorDict(pending["batch"], batch_size=pending["batch_size"])

    def close(self) -> None:
        """Stop the worker processes."""
        for worker in self._workers:
            try:
                if self._in_flight:
                    worker.recv()
                worker.send("close")
                worker.recv()
            except (RuntimeError, BrokenPipeError, OSError):
                pass
            if isinstance(worker, _Process):
                worker.end(grace=10.0)
        self._workers = []
        self._in_flight = False
        self._pending = None


def _cpu_weights(actor: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in actor.state_dict().items()}
