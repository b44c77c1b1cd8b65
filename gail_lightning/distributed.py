"""Averages across DDP ranks for the hand-written update loop; no-ops in one process.

Lightning's DDP wraps the module in ``DistributedDataParallel``, whose gradient hooks
assume one backward per forward over every parameter. A GAIL step runs many backward
passes per ``training_step``, each over some of the networks (D, then actor and critic),
so the module runs its backward passes outside DDP's sync (``no_grad_sync``) and averages
each optimizer's gradients itself, in one all-reduce per update.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from torch.nn.parallel import DistributedDataParallel


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (and return it)."""
    if world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


def all_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over ranks (a new tensor; ``tensor`` itself in one process)."""
    n = world_size()
    return tensor if n == 1 else all_sum_(tensor.detach().clone()) / n


def mean_grads_(params: Iterable[torch.nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over ranks, in one all-reduce."""
    n = world_size()
    if n == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = all_sum_(_flatten_dense_tensors(grads)) / n
    for grad, mean in zip(grads, _unflatten_dense_tensors(flat, grads), strict=True):
        grad.copy_(mean)


def no_grad_sync(model: torch.nn.Module) -> AbstractContextManager:
    """Backward passes in this context leave a ``DistributedDataParallel`` wrapper's
    gradient reduction alone (its ``no_sync()``); ``mean_grads_`` averages instead."""
    return model.no_sync() if isinstance(model, DistributedDataParallel) else nullcontext()
