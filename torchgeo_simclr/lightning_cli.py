"""``torchgeo fit`` in this process, reporting a task's or datamodule's own error.

:class:`PluginCLI` is the LightningCLI; :func:`run_cli` and :func:`fit` run it
on a command line; :func:`quiet_lightning` keeps Lightning's notes off the
terminal of the commands that train or predict.
"""

import copy
import logging
import os
import pickle
import re
import sys
import warnings
from argparse import ArgumentError
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from torchgeo.datamodules import BaseDataModule
from torchgeo.tasks import BaseTask

from .config_errors import (
    config_files,
    named_config_file,
    option_values,
    parser_error,
    read_config,
    repeated_key_error,
    resolve,
)
from .interrupts import Interrupted, keyboard_interrupts
from .tasks.checkpoint_note import written_checkpoint
from .tasks.irrigation import StandInWarning

#: What ``torchgeo-simclr`` reports as one line of bad input.
INPUT_ERRORS = (FileNotFoundError, FileExistsError, PermissionError, ValueError)


def model_options(options: Iterable[str]) -> list[str]:
    """The model options among a command line's option names.

    Args:
        options: option names, e.g. ``["--model.init_args.lr", "--config"]``.

    Returns:
        Top-level ``init_args`` names, sorted, e.g. ``["lr"]``; the class path
        itself (``--model``) is not an option.
    """
    names = {
        option.removeprefix("--model.").removeprefix("init_args.").split(".", 1)[0]
        for option in options
        if option.startswith("--model.")
    }
    return sorted(name for name in names if name)


def same_option(given: Any, restored: Any) -> bool:
    """Whether a command-line option equals the checkpoint's value.

    Args:
        given: the value given on the command line.
        restored: the value the checkpoint restores.

    Returns:
        True if equal, or two paths of the same file (checkpoints record
        earlier stages' paths absolute).
    """
    if given == restored:
        return True
    if isinstance(given, str) and isinstance(restored, str):
        return os.path.abspath(given) == os.path.abspath(restored)
    return False


def construction_error(spec: Any) -> BaseException | None:
    """The error that building a ``class_path``/``init_args`` config raises.

    Args:
        spec: a parsed ``model`` or ``data`` entry (a jsonargparse Namespace
            with ``class_path`` and ``init_args``), or anything else.

    Returns:
        The bad-input error the class's constructor raises with these
        arguments, or None where it builds, or where *spec* is not such an
        entry.
    """
    class_path = getattr(spec, "class_path", None)
    init_args = getattr(spec, "init_args", None)
    if not isinstance(class_path, str) or init_args is None:
        return None
    try:
        resolve(class_path)(**init_args.as_dict())
    except INPUT_ERRORS as error:
        return error
    except Exception:
        # Not bad input (or arguments that need jsonargparse to build them):
        # jsonargparse's own report stands.
        return None
    return None


class PluginCLI(LightningCLI):
    """LightningCLI whose model or datamodule errors reach the user unwrapped.

    LightningCLI builds ``model`` and ``data`` through jsonargparse, which
    catches whatever their constructors raise and reports it inside a
    "Does not validate against any of the Union subtypes" dump of the whole
    configuration. Here, when that happens, the constructor that failed is
    called again directly and its own error (e.g. a checkpoint of the wrong
    kind, named with the kind that was expected) is raised instead.
    """

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """A parser that raises its errors instead of printing its usage.

        Args:
            kwargs: LightningCLI's parser arguments.

        Returns:
            The parser.
        """
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse the arguments; remember the task the configuration names.

        ``--ckpt_path`` then replaces it with the task that wrote the
        checkpoint, which :meth:`before_instantiate_classes` refuses.

        Args:
            parser: the CLI's parser.
            args: the command-line arguments.

        Raises:
            ValueError: for an option or config file the parser refuses, in
                one line instead of a page of usage (see :func:`parser_error`),
                and for a config file that gives a key twice (YAML would keep
                the second without a word).
        """
        if args is None:
            tokens = sys.argv[1:]
        else:  # a dict or Namespace of arguments has no command line
            tokens = [str(a) for a in args] if isinstance(args, list) else []
        #: The command line, for messages that name the config file at fault.
        self.tokens = tokens
        if (repeated := repeated_key_error(tokens)) is not None:
            raise ValueError(repeated)
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            raise ValueError(parser_error(str(error), tokens)) from None
        config = self.config.get(self.config.get("subcommand") or "", self.config)
        #: ``class_path`` of the model the configuration names.
        self.configured_model = getattr(config.get("model"), "class_path", None)
        init_args = getattr(config.get("model"), "init_args", None)
        #: The command line's option names.
        self.given_options = {t.split("=", 1)[0] for t in tokens if t.startswith("--")}
        #: Model options given on the command line, with their values, which
        #: ``--ckpt_path`` would replace with the checkpoint's.
        self.given_model_options = {
            name: copy.deepcopy(init_args.get(name))
            for name in model_options(self.given_options)
            if init_args is not None and name in init_args
        }

    def _parse_ckpt_path(self) -> None:
        """Restore the model's options from ``--ckpt_path``, or say why not.

        Raises:
            ValueError: if the file is not a checkpoint torch can read.
        """
        try:
            super()._parse_ckpt_path()
        except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
            config = self.config[self.config.subcommand]
            reason = str(error).strip().splitlines()[0]
            msg = (
                f"--ckpt_path {str(config.get('ckpt_path'))!r} is not a readable "
                f"PyTorch checkpoint ({reason}); pass a .ckpt file that a fit run "
                "wrote, and copy it again if it was cut short."
            )
            raise ValueError(msg) from None

    def before_instantiate_classes(self) -> None:
        """Refuse a checkpoint of another task, or a schedule Lightning ignores.

        Raises:
            ValueError: for ``--ckpt_path`` of a checkpoint another task wrote
                (LightningCLI would quietly train that task instead), or for
                ``--lr_scheduler`` without ``--optimizer``.
        """
        config = self.config[self.subcommand] if self.subcommand else self.config
        restored = getattr(config.get("model"), "class_path", None)
        if (
            self.configured_model
            and restored
            and resolve(restored) is not resolve(self.configured_model)
        ):
            raise ValueError(self._other_task_error(config, restored))
        # After the task check: another task's checkpoint restores none of
        # this task's options, and the wrong file is what to report.
        self._refuse_ignored_options(config)
        self._checkpoints_follow_root_dir(config)
        self._replaced_optimiser_options(config)
        # Only a fit trains: validate, test and predict use no optimiser.
        if (
            self.subcommand in (None, "fit")
            and config.get("lr_scheduler")
            and not config.get("optimizer")
        ):
            msg = (
                "--lr_scheduler takes effect only together with --optimizer, "
                "which replaces the task's own optimiser and warm-up + cosine "
                "schedule; drop --lr_scheduler (the task's schedule is set by "
                "--model.init_args.warmup_fraction) or pass --optimizer too."
            )
            raise ValueError(msg)

    def _other_task_error(self, config: Any, restored: str) -> str:
        """The sentence refusing a ``--ckpt_path`` that another task wrote.

        Args:
            config: the subcommand's configuration.
            restored: ``class_path`` of the task that wrote the checkpoint.

        Returns:
            One sentence naming both tasks and what to pass instead: for
            ``fit``, the earlier stage's checkpoint as the task's own option;
            for ``validate``, ``test`` and ``predict``, a checkpoint of the
            configured task, or the config of the stage that wrote this one.
        """
        given = (
            f"--ckpt_path {str(config.get('ckpt_path'))!r} was written by {restored}"
        )
        if self.subcommand in (None, "fit"):
            return (
                f"{given} but the configuration trains {self.configured_model}; "
                "--ckpt_path resumes a run of the same task, so pass an earlier "
                "stage's checkpoint as --model.init_args.checkpoint (fine-tuning) "
                "or --model.init_args.teacher (distillation)."
            )
        if self.subcommand == "predict":
            return (
                f"{given} but the configuration predicts with "
                f"{self.configured_model} (Lightning would quietly predict with "
                "the checkpoint's own task instead); drop --ckpt_path and pass "
                "the file as --model.init_args.checkpoint where the task takes "
                "one (conf/predict_cal.yaml's does), or pass a checkpoint that "
                "a fit of this configuration wrote."
            )
        return (
            f"{given} but the configuration {self.subcommand}s "
            f"{self.configured_model} (Lightning would quietly score the "
            "checkpoint's own task instead); pass a checkpoint that a fit of "
            f"this configuration wrote, or {self.subcommand} this one with the "
            "config of the stage that wrote it."
        )

    def _checkpoints_follow_root_dir(self, config: Any) -> None:
        """Move the configs' checkpoint folders with ``--trainer.default_root_dir``.

        The configs write checkpoints to ``runs/<name>/checkpoints``, beside
        their ``default_root_dir``; a run given another root on the command
        line would otherwise log there and checkpoint into the config's
        folder, mixing its ``last.ckpt`` with another run's. A checkpoint
        folder set on the command line (``--trainer.callbacks.init_args.dirpath``,
        or a ``ModelCheckpoint`` given whole with its ``dirpath``), or one a
        config names apart from its root, stays where it was set; callbacks
        added with ``--trainer.callbacks+`` move nothing.

        Args:
            config: the subcommand's configuration.
        """
        if "--trainer.default_root_dir" not in self.given_options:
            return
        if dirpath_on_command_line(self.tokens):
            return
        configured = configured_root(self.tokens)
        if configured is None:
            return
        root = config.trainer.get("default_root_dir")
        for callback in config.trainer.get("callbacks") or []:
            init_args = getattr(callback, "init_args", None)
            if init_args is None or not getattr(callback, "class_path", "").endswith(
                "ModelCheckpoint"
            ):
                continue
            dirpath = init_args.get("dirpath")
            if isinstance(dirpath, str) and os.path.normpath(dirpath) == (
                os.path.normpath(os.path.join(configured, "checkpoints"))
            ):
                init_args.dirpath = os.path.join(root, "checkpoints")

    def _replaced_optimiser_options(self, config: Any) -> None:
        """Refuse, or name, the task's optimiser options that ``--optimizer`` replaces.

        LightningCLI's ``--optimizer`` replaces the task's
        ``configure_optimizers``: its optimiser, its warm-up + cosine schedule
        and its per-group rates (see each task's ``optimiser_options``), which
        were then dropped without a word.

        Args:
            config: the subcommand's configuration.

        Raises:
            ValueError: for such an option given on the command line together
                with ``--optimizer``.

        Warns:
            UserWarning: naming the options (as a config or the defaults set
                them) that ``--optimizer`` replaces, once per run.
        """
        optimizer = config.get("optimizer")
        model = config.get("model")
        init_args = getattr(model, "init_args", None)
        if self.subcommand not in (None, "fit") or not optimizer or init_args is None:
            return
        task = resolve(model.class_path)
        options = [
            name for name in getattr(task, "optimiser_options", ()) if name in init_args
        ]
        if not options:
            return
        name = str(getattr(optimizer, "class_path", optimizer)).rsplit(".", 1)[-1]
        replaced = (
            f"--optimizer {name} replaces {task.__name__}'s own optimiser, its "
            "warm-up + cosine schedule and its per-group learning rates"
        )
        given = [option for option in options if option in self.given_model_options]
        if given:
            named = ", ".join(
                f"--model.init_args.{option} {init_args.get(option)!r}"
                for option in given
            )
            msg = (
                f"{replaced}, so {named} would be ignored; drop "
                f"{'it' if len(given) == 1 else 'them'} and set the optimiser's "
                "options under --optimizer.init_args (and a schedule with "
                "--lr_scheduler), or drop --optimizer to train with the task's "
                "options."
            )
            raise ValueError(msg)
        named = ", ".join(f"{option} {init_args.get(option)!r}" for option in options)
        warnings.warn(
            f"{replaced}, so its options {named} (--model.init_args) are not used; "
            "set the rates under --optimizer.init_args and a schedule with "
            "--lr_scheduler, or drop --optimizer to train with the task's own.",
            UserWarning,
            stacklevel=2,
        )

    def _refuse_ignored_options(self, config: Any) -> None:
        """Refuse model options that ``--ckpt_path`` replaced with its own.

        LightningCLI puts a checkpoint's hyperparameters over the parsed
        configuration, so ``--model.init_args.X`` on the command line was
        dropped without a word.

        Args:
            config: the subcommand's configuration, after ``--ckpt_path``.

        Raises:
            ValueError: if a command-line model option lost its value.
        """
        if not config.get("ckpt_path"):
            return
        init_args = getattr(config.get("model"), "init_args", None)
        if init_args is None:
            return
        lost = [
            f"{name} {given!r} (the checkpoint has {init_args.get(name)!r})"
            for name, given in self.given_model_options.items()
            if not same_option(given, init_args.get(name))
        ]
        if not lost:
            return
        if self.subcommand in (None, "fit"):
            remedy = (
                "resume without changing them, or start a new fit (no "
                "--ckpt_path) with the options you want."
            )
        else:
            remedy = (
                f"drop {'it' if len(lost) == 1 else 'them'} to {self.subcommand} "
                "the checkpoint as it was trained, or fit a new checkpoint with "
                "the options you want."
            )
        msg = (
            f"--ckpt_path {str(config.get('ckpt_path'))!r} restores the model "
            "options the run was trained with, so --model.init_args "
            f"{', '.join(lost)} would be ignored; {remedy}"
        )
        raise ValueError(msg)

    def _run_subcommand(self, subcommand: str) -> None:
        """Run the subcommand; on Ctrl-C, say which checkpoint resumes it.

        Args:
            subcommand: e.g. ``fit``.

        Raises:
            Interrupted: on Ctrl-C during a fit, naming the run's latest
                checkpoint (a rerun in the same folder writes
                ``last-vN.ckpt``, not ``last.ckpt``), or saying that none was
                saved yet; ``validate``, ``test`` and ``predict`` save no
                checkpoint, so their interrupt is passed on as it is.
        """
        if subcommand != "fit":
            with keyboard_interrupts():
                super()._run_subcommand(subcommand)
            return
        try:
            with keyboard_interrupts():
                super()._run_subcommand(subcommand)
        except KeyboardInterrupt as interrupt:
            raise Interrupted(self._resume_hint(), interrupt) from None

    def _resume_hint(self) -> str:
        """One sentence on what an interrupted run kept and how to resume it."""
        written = written_checkpoint(self.trainer)
        path = "" if written is None else str(written)
        # Only under SLURM does Lightning save and resume from these.
        on_slurm = "SLURM_NTASKS" in os.environ
        hpc = hpc_checkpoint(getattr(self.trainer, "default_root_dir", None))
        if (
            on_slurm
            and hpc is not None
            and not (
                path
                and os.path.exists(path)
                and os.path.getmtime(path) > hpc.stat().st_mtime
            )
        ):
            return (
                f"Lightning saved SLURM's requeue checkpoint {hpc.resolve()} (on "
                "SIGUSR1): the requeued job resumes from it by itself; elsewhere, "
                f"resume with --ckpt_path {hpc.resolve()}."
            )
        if path and os.path.exists(path):
            return (
                "The checkpoints saved so far are kept; resume with --ckpt_path "
                f"{os.path.abspath(path)}."
            )
        return (
            "No checkpoint of this run was saved yet (the first comes at the end "
            "of an epoch), so run it again from the start."
        )

    def after_instantiate_classes(self) -> None:
        """Stop a fit whose earlier stage's checkpoint is missing, before the data.

        The task builds a stand-in network for ``--ckpt_path`` runs (see
        :meth:`~torchgeo_simclr.tasks.irrigation.IrrigationTask.build_without`);
        a fit without one would stop only once the data were set up, which
        takes minutes at full scale.

        Raises:
            FileNotFoundError: if the fit has no ``--ckpt_path`` and the task
                lacks its earlier stage's checkpoint.
        """
        super().after_instantiate_classes()
        config = self.config[self.subcommand] if self.subcommand else self.config
        missing = getattr(self.model, "missing_checkpoint", None)
        if self.subcommand == "fit" and missing and not config.get("ckpt_path"):
            raise FileNotFoundError(missing)

    def instantiate_classes(self) -> None:
        """Build the classes; raise the model's or datamodule's own error.

        Raises:
            FileNotFoundError: from the model's or datamodule's constructor.
            ValueError: from those constructors, or jsonargparse's own; for
                ``--trainer.enable_checkpointing false`` with a
                ``ModelCheckpoint`` in the callbacks (Lightning's refusal
                names no way out).
        """
        config = self.config[self.subcommand] if self.subcommand else self.config
        try:
            with warnings.catch_warnings():
                if self.subcommand == "fit" and not config.get("ckpt_path"):
                    # after_instantiate_classes refuses this fit in one line.
                    warnings.simplefilter("ignore", StandInWarning)
                super().instantiate_classes()
        except ValueError:
            for key in ("model", "data"):
                error = construction_error(config.get(key))
                if error is not None:
                    raise named_config_file(error, self.tokens) from None
            raise
        except MisconfigurationException as error:
            if "enable_checkpointing=False" not in str(error):
                raise
            msg = (
                "--trainer.enable_checkpointing false conflicts with the "
                "ModelCheckpoint in the config's trainer.callbacks, which "
                "Lightning refuses; to save no checkpoint also pass "
                "--trainer.callbacks=[] (it drops the config's other callbacks "
                "too), or drop --trainer.enable_checkpointing."
            )
            raise ValueError(msg) from None


def dirpath_on_command_line(tokens: Sequence[str]) -> bool:
    """Whether a command line sets a checkpoint callback's ``dirpath`` itself.

    Args:
        tokens: the command line, e.g. ``["--trainer.callbacks+",
            "LearningRateMonitor"]``.

    Returns:
        True for an option naming ``dirpath`` (e.g.
        ``--trainer.callbacks.init_args.dirpath``), or a ``--trainer.callbacks``
        value that gives one (a ``ModelCheckpoint`` as JSON or YAML).
    """
    for option, value in option_values(tokens):
        if "dirpath" in option:
            return True
        if option.startswith("--trainer.callbacks") and "dirpath" in (value or ""):
            return True
    return False


def configured_root(tokens: Sequence[str]) -> str | None:
    """The ``trainer.default_root_dir`` that a command line's config files give.

    Args:
        tokens: the command line.

    Returns:
        The last ``--config`` file's root that sets one, as written there;
        None where none does.
    """
    root = None
    for path in config_files(tokens):
        tree = read_config(path)
        trainer = tree.get("trainer") if isinstance(tree, dict) else None
        if isinstance(trainer, dict) and trainer.get("default_root_dir"):
            root = str(trainer["default_root_dir"])
    return root


def hpc_checkpoint(root: str | os.PathLike[str] | None) -> Path | None:
    """The newest checkpoint Lightning saved for a SLURM requeue, if any.

    On SIGUSR1 under SLURM, Lightning saves ``hpc_ckpt_N.ckpt`` in the
    trainer's ``default_root_dir`` and requeues the job, which resumes from
    the highest ``N``.

    Args:
        root: the trainer's ``default_root_dir``.

    Returns:
        That file, or None.
    """
    if root is None or not os.path.isdir(root):
        return None
    numbered = [
        (int(match.group(1)), Path(root, name))
        for name in os.listdir(root)
        if (match := re.fullmatch(r"hpc_ckpt_(\d+)\.ckpt", name))
    ]
    return max(numbered)[1] if numbered else None


#: The LightningCLI subcommands that ``torchgeo-simclr`` runs through
#: :class:`PluginCLI`.
SUBCOMMANDS = ("fit", "validate", "test", "predict")


def run_cli(arguments: Sequence[str], subcommand: str = "fit") -> PluginCLI:
    """Run ``torchgeo SUBCOMMAND ARGUMENTS`` in this process.

    Args:
        arguments: the arguments after ``torchgeo SUBCOMMAND``, e.g.
            ``["--config", "conf/simclr_quickstart.yaml"]``.
        subcommand: one of :data:`SUBCOMMANDS`.

    Returns:
        The finished CLI, with its ``trainer``, ``model`` and ``datamodule``.
    """
    # LightningCLI reads sys.argv, which must be this stage's command line:
    # DDP starts every other rank by running sys.argv again.
    argv, sys.argv = sys.argv, [sys.argv[0], subcommand, *arguments]
    try:
        with keyboard_interrupts():
            return PluginCLI(
                model_class=BaseTask,
                datamodule_class=BaseDataModule,
                seed_everything_default=0,
                subclass_mode_model=True,
                subclass_mode_data=True,
                save_config_kwargs={"overwrite": True},
            )
    finally:
        sys.argv = argv


def fit(arguments: Sequence[str]) -> Path | None:
    """Run ``torchgeo fit`` in this process and return the last checkpoint.

    Args:
        arguments: the arguments after ``torchgeo fit``, e.g.
            ``["--config", "conf/simclr_quickstart.yaml"]``.

    Returns:
        Path of the checkpoint written last, None if the run wrote none
        (``fast_dev_run``, or no checkpoint callback).
    """
    return written_checkpoint(run_cli(arguments).trainer)


#: Lightning's loggers, set to INFO when Lightning is first imported.
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric")


def quiet_lightning() -> None:
    """Keep Lightning's start-up notes and known harmless warnings off the terminal.

    The GPU/TPU banner, tips and seeding notes say nothing about a map or an
    experiment; neither do Lightning's own deprecation warning from its pytree
    helper and, in distillation, the note that the frozen teacher is in eval mode.
    Lightning sets its loggers to INFO when first imported, which this module
    has done.
    """
    quiet_tips()
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings(
        "ignore", message=r"Found \d+ module\(s\) in eval mode at the start"
    )


@contextmanager
def lightning_muted() -> Iterator[None]:
    """Keep Lightning's notes, tips and harmless warnings quiet for one call.

    For functions of this package that run a Trainer of their own, such as
    :func:`~torchgeo_simclr.inference.predict_map`: their caller set up no
    Trainer, so its GPU banner and tips would only puzzle. The caller's log
    levels and warning filters are restored afterwards.

    Yields:
        Nothing; Lightning is quiet inside the ``with`` block.
    """
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        _ignore_pytree_warning()
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _no_tip(record: logging.LogRecord) -> bool:
    """Whether a Lightning log record is anything but one of its tips."""
    return not record.getMessage().startswith("\N{ELECTRIC LIGHT BULB} Tip:")


def _ignore_pytree_warning() -> None:
    """Drop the deprecation warning Lightning's pytree helper gives itself."""
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated"
    )


def quiet_tips() -> None:
    """Keep Lightning's tips and its pytree deprecation warning off the terminal.

    Its notes stay (e.g. which checkpoint a fit wrote); the tip about a
    cloud logger and the warning from Lightning's own code ask nothing of
    the user, who reads them as problems.
    """
    _ignore_pytree_warning()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_no_tip)
