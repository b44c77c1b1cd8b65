"""The Lightning CLI: config files, links from env sizes to networks, forced callbacks."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from gail_lightning import quiet  # noqa: F401 -- silences the warnings judged benign
from gail_lightning.callbacks import ExpertScore, FramesProgressBar, GracefulStop
from gail_lightning.checkpointing import LastCheckpoint, check_resumable, resume_checkpoint
from gail_lightning.data import CollectorDataModule
from gail_lightning.errors import TrainingDivergedError, UserInputError
from gail_lightning.module import GAILModule
from gail_lightning.online_module import OnlineModule
from gail_lightning.provenance import package_versions
from gail_lightning.settings import check_old_names, upgrade_hparams

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def resolve_config_names(argv: list[str]) -> list[str]:
    """Let ``--config hopper.yaml`` mean ``configs/hopper.yaml`` when no such file is here."""
    resolved = list(argv)
    for i, arg in enumerate(resolved):
        if arg in ("--config", "-c") and i + 1 < len(resolved):
            name, at = resolved[i + 1], i + 1
        elif arg.startswith("--config="):
            name, at = arg.split("=", 1)[1], None
        else:
            continue
        candidate = CONFIG_DIR / name
        if not Path(name).is_file() and candidate.is_file():
            print(f"Using config {candidate}", file=sys.stderr)
            if at is None:
                resolved[i] = f"--config={candidate}"
            else:
                resolved[at] = str(candidate)
    return resolved


def refuse_old_model_names(argv: list[str]) -> None:
    """Name the new flag of a model setting given by its pre-2026-12-04 name, in the command
    or a config file, instead of jsonargparse's generic error."""
    for i, arg in enumerate(argv):
        value = argv[i + 1] if i + 1 < len(argv) else ""
        if arg.startswith("--model."):
            key, _, given = arg.removeprefix("--model.").removeprefix("init_args.").partition("=")
            check_old_names({key: given or value})
        elif arg in ("--config", "-c") or arg.startswith("--config="):
            path = Path(arg.split("=", 1)[1] if "=" in arg else value)
            try:
                config = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError):
                continue  # jsonargparse reports a missing or malformed file in one line
            if isinstance(config, dict) and isinstance(config.get("model"), dict):
                check_old_names(config["model"])


class GAILCLI(LightningCLI):
    """``fit``/``validate`` over an ``OnlineModule`` and ``CollectorDataModule``.

    The model is ``GAILModule`` unless a config or ``--model SACModule`` names another
    (``class_path``), so GAIL configs list its arguments directly under ``model:``.
    Env sizes flow from the DataModule to the networks, ``data.seed`` seeds everything,
    and evaluation, best and last checkpoints and the frames progress bar are always on
    (configurable as ``--eval.*``, ``--checkpoint.*``, ``--last_checkpoint.*``,
    ``--progress_bar.*``).
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.set_defaults({"model": {"class_path": f"{GAILModule.__module__}.{GAILModule.__name__}"}})
        for key in ("obs_dim", "action_low", "action_high"):
            parser.link_arguments(f"data.{key}", f"model.init_args.{key}", apply_on="instantiate")
        parser.link_arguments("data.seed", "seed_everything")
        parser.add_lightning_class_args(ExpertScore, "eval")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(LastCheckpoint, "last_checkpoint")
        parser.add_lightning_class_args(FramesProgressBar, "progress_bar")
        parser.add_lightning_class_args(GracefulStop, "graceful_stop")
        parser.set_defaults(
            {
                "checkpoint.monitor": "eval/normalized_score",
                "checkpoint.mode": "max",
                "checkpoint.save_last": False,  # LastCheckpoint writes last.ckpt
                "checkpoint.filename": "best-{frames:.0f}",
                # Every batch: the best checkpoint is then the one just evaluated.
                "checkpoint.every_n_train_steps": 1,
                "trainer.max_epochs": -1,  # the module stops on data.total_frames
                "trainer.log_every_n_steps": 1,
                "trainer.num_sanity_val_steps": 0,
                "trainer.plugins": [{"class_path": "gail_lightning.checkpointing.AtomicCheckpointIO"}],
            }
        )

    def before_instantiate_classes(self) -> None:
        # A fixed checkpoint folder (not the logger's per-run version folder) is what lets
        # `fit --ckpt_path last` find the previous run's last.ckpt.
        config = self.config[self.subcommand] if self.subcommand else self.config
        root = Path(config.trainer.default_root_dir or ".")
        if config.trainer.logger in (None, True) and config.trainer.default_root_dir:
            # Lightning's own default logger, without its lightning_logs/ level: the run
            # folder holds checkpoints/, eval_history.json and version_N/ side by side.
            config.trainer.logger = Namespace(
                class_path="lightning.pytorch.loggers.TensorBoardLogger",
                init_args=Namespace(save_dir=str(root), name=""),
            )
        if config.checkpoint.dirpath is None:
            config.checkpoint.dirpath = str(root / "checkpoints")
        if config.last_checkpoint.dirpath is None:
            config.last_checkpoint.dirpath = config.checkpoint.dirpath
        if config.trainer.enable_progress_bar is False:
            # The frames bar is always added; refresh_rate 0 is how a Lightning bar is silenced.
            config.trainer.enable_progress_bar = None
            config.progress_bar.refresh_rate = 0

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads the checkpoint's hyperparameters into the config here; ours reads
        # the file once and refuses, in one line, a damaged file or another model's, and
        # takes settings saved before they were grouped by role in their new places.
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else None
        self._resume = None  # the named checkpoint file and its contents, read once
        if config is None or config.get("ckpt_path") in (None, "last"):
            return  # Lightning reads no hyperparameters from `last` either
        self._resume = resume_checkpoint(config.ckpt_path, Path("."))
        if self._resume is None:
            return
        check_resumable(*self._resume, config.model.class_path, config.data.env_id)
        hparams = upgrade_hparams(self._resume[1].get("hyper_parameters", {}))
        hparams.pop("_instantiator", None)
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        if hparams:
            self.config = self.parser.parse_object({subcommand: {"model": hparams}}, self.config)

    def before_fit(self) -> None:
        self._check_resume(optimizers=True)
        if self.trainer.logger is not None:
            self.trainer.logger.log_hyperparams({"versions": package_versions()})

    def before_validate(self) -> None:
        self._check_resume(optimizers=False)

    def _check_resume(self, optimizers: bool) -> None:
        """Also ``--ckpt_path last``, and network shapes (and for ``fit`` the optimizers), once
        the model is built."""
        config = self.config[self.subcommand]
        found = self._resume or resume_checkpoint(config.ckpt_path, Path(config.last_checkpoint.dirpath))
        if found is not None:
            model_class = f"{type(self.model).__module__}.{type(self.model).__name__}"
            ours = self.model.configure_optimizers() if optimizers else None
            check_resumable(*found, model_class, self.datamodule.env_id, self.model.state_dict(),
                            ours if isinstance(ours, list | None) else [ours])


def main() -> None:
    """Entry point of ``train.py``."""
    sys.argv[1:] = resolve_config_names(sys.argv[1:])
    try:
        refuse_old_model_names(sys.argv[1:])
        GAILCLI(
            OnlineModule,
            CollectorDataModule,
            subclass_mode_model=True,
            save_config_kwargs={"overwrite": True},
        )
    except Exception as err:
        ours = _our_error(err)
        if ours is None:
            raise
        sys.exit(f"error: {ours}")


def _our_error(err: BaseException | None) -> BaseException | None:
    """Our error behind ``err``: jsonargparse wraps errors raised while building the model."""
    while err is not None:
        if isinstance(err, (UserInputError, TrainingDivergedError)):
            return err
        err = err.__cause__ or err.__context__
    return None
