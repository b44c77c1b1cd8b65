"""The policy and adversary settings grouped by role (``--model.ppo.*``, ``--model.disc.*``
…), and the flat names they had before 2026-12-04, so old configs fail with the new name
and old checkpoints still load."""

from __future__ import annotations

from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, TypeVar

from gail_lightning.errors import UserInputError


@dataclass(frozen=True)
class PPOSettings:
    """Clipped PPO (Schulman et al. 2017). With ``policy_optimizer: trpo`` the Adam fit of
    the value network reads ``lr``, ``epochs`` and ``minibatch_size``.

    Args:
        lr: Adam learning rate of policy and value network.
        epochs: passes over each batch.
        minibatch_size: minibatch size in frames; must divide the batch size.
        clip_epsilon: ratio clip.
        entropy_coeff: weight of the policy entropy bonus.
        critic_coeff: weight of the value loss.
    """

    lr: float = 3e-4
    epochs: int = 10
    minibatch_size: int = 64
    clip_epsilon: float = 0.2
    entropy_coeff: float = 0.0
    critic_coeff: float = 0.5


@dataclass(frozen=True)
class TRPOSettings:
    """The natural-gradient policy step of the original GAIL (Schulman et al. 2015).

    Args:
        max_kl: bound on the mean KL between the old and the new policy.
        cg_damping: damping added to the Fisher-vector products.
    """

    max_kl: float = 0.01
    cg_damping: float = 0.1


@dataclass(frozen=True)
class DiscriminatorSettings:
    """The discriminator's Adam steps on expert against policy pairs.

    Args:
        lr: Adam learning rate.
        steps: updates per batch; 0 never updates D, whose weights then stay at their random
            initialization: the survival-only control of a result.
        batch_size: expert pairs (and as many policy pairs) per update.
        grad_penalty: weight of the gradient penalty on D's inputs (0 turns it off).
        hidden_sizes: D's hidden layer widths (tanh); None: the policy's.
    """

    lr: float = 3e-4
    steps: int = 5
    batch_size: int = 256
    grad_penalty: float = 0.0
    hidden_sizes: tuple[int, ...] | None = None


@dataclass(frozen=True)
class WarmStartSettings:
    """Behavioral cloning of the demonstrations before GAIL starts.

    Args:
        steps: Adam steps (0 turns the warm start off).
        lr: Adam learning rate.
        batch_size: expert pairs per step.
    """

    steps: int = 0
    lr: float = 1e-3
    batch_size: int = 256


# The flat model settings before they were grouped, and where each went.
RENAMED = {
    "policy_lr": "ppo.lr", "ppo_epochs": "ppo.epochs", "minibatch_size": "ppo.minibatch_size",
    "clip_epsilon": "ppo.clip_epsilon", "entropy_coeff": "ppo.entropy_coeff",
    "critic_coeff": "ppo.critic_coeff", "max_kl": "trpo.max_kl", "cg_damping": "trpo.cg_damping",
    "disc_lr": "disc.lr", "disc_steps": "disc.steps", "disc_batch_size": "disc.batch_size",
    "grad_penalty": "disc.grad_penalty", "bc_pretrain_steps": "bc.steps", "bc_lr": "bc.lr",
}
GAIL_CLASS = "gail_lightning.module.GAILModule"
PPO_CLASS = "gail_lightning.PPOModule"

S = TypeVar("S")


def settings(kind: type[S], value: S | dict[str, Any]) -> S:
    """``value`` as a ``kind``: checkpoints and the CLI hand groups over as dicts."""
    return kind(**value) if isinstance(value, dict) else value


def plain(hparams: dict[str, Any]) -> dict[str, Any]:
    """``hparams`` with setting groups as dicts, so a checkpoint loads with ``weights_only``."""
    return {key: asdict(value) if is_dataclass(value) else value for key, value in hparams.items()}


def check_old_names(model: dict[str, Any]) -> None:
    """Refuse model settings (a config's ``model:`` block, or its ``init_args``) written the
    way they were before 2026-12-04, naming what replaced them."""
    args = model.get("init_args", model)
    for key in args:
        if key in RENAMED:
            raise UserInputError(
                f"--model.{key} is now --model.{RENAMED[key]} (settings are grouped by role: "
                "model.ppo, model.trpo, model.disc, model.bc); rename it in your config or command."
            )
    if args.get("reward") == "env":
        raise UserInputError(
            "--model.reward env is now its own model: train on the env reward with --model "
            "gail_lightning.PPOModule (as configs/experts/hopper.yaml does)."
        )


def upgrade_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's hyperparameters in today's form: a ``GAILModule``'s flat names moved into
    their groups, and one trained on the env reward (``reward: env``) as the ``PPOModule`` it was.
    Checkpoints written before the CLI had a model choice have no ``_class_path`` and hold a
    ``GAILModule``."""
    if hparams.get("_class_path", GAIL_CLASS) not in (GAIL_CLASS, "gail_lightning.GAILModule"):
        return dict(hparams)
    out = {key: value for key, value in hparams.items() if key not in RENAMED}
    for old, new in RENAMED.items():
        if old in hparams:
            group, name = new.split(".")
            out.setdefault(group, {})[name] = hparams[old]
    if "disc_batch_size" in hparams:  # the warm start drew its pairs in D's batch size
        out.setdefault("bc", {})["batch_size"] = hparams["disc_batch_size"]
    if out.get("reward") == "env":
        for key in ("reward", "absorbing", "disc", "bc"):
            out.pop(key, None)
        out["_class_path"] = PPO_CLASS
    return out
