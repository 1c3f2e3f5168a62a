"""The label-efficiency experiment: SimCLRv2 vs supervised, and distillation.

For every label fraction and seed it fine-tunes the SimCLRv2 encoder, trains the
supervised baseline on the same labelled subset, and distils the fine-tuned model
into a small student; all are scored on the same held-out test blocks (or
patches). Results go to ``results.csv`` row by row, so an interrupted experiment
resumes where it stopped, on the data split it was made on
(:mod:`~torchgeo_simclr.split_guard`); :func:`plot_results` draws F1 against the
label fraction.
"""

import csv
import json
import os
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from .digest import file_digest
from .interrupts import keyboard_interrupts
from .models.checkpoint import read_checkpoint
from .outputs import replaced_when_complete
from .split_guard import checkpoint_split, split_record
from .throughput import FreshProcessTimer

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The methods compared, in the order they run for a fraction and seed.
METHODS = ("simclr", "supervised", "distilled")

#: Columns of ``results.csv``.
COLUMNS = (
    "method",
    "fraction",
    "n_labels",
    "seed",
    "f1",
    "precision",
    "recall",
    "accuracy",
    "auroc",
    "params",
    "inference_img_s",
    "speedup_vs_teacher",
    "model",
    "seconds",
    "checkpoint",
)


#: Stage arguments that name a network: refused, since they reach every stage.
NETWORK_OPTIONS = (
    "--model",
    "--model.class_path",
    "--model.init_args.model",
    "--model.init_args.backbone_kwargs",
)

#: Stage arguments that would spread a stage over several processes (DDP). The
#: experiment runs its stages one after another in one process, which the
#: other ranks cannot follow, so every stage runs on one device.
DEVICE_OPTIONS = ("--trainer.devices", "--trainer.strategy", "--trainer.num_nodes")


@dataclass
class ExperimentPlan:
    """What an experiment runs: data, fractions, seeds and one config per stage."""

    #: Imagery and labels directory (as for the datamodule's ``root``).
    root: Path
    #: Output directory: ``results.csv``, ``f1_vs_fraction.png``, ``runs/``.
    out: Path
    #: Label fractions, e.g. ``[0.01, 0.1, 1.0]``.
    fractions: Sequence[float]
    #: Seeds: each sets ``seed_everything`` and the labelled subset's seed.
    seeds: Sequence[int]
    #: LightningCLI config of SimCLRv2 pretraining (run once, without labels).
    pretrain_config: Path
    #: LightningCLI config of fine-tuning, for each fraction and seed.
    finetune_config: Path
    #: LightningCLI config of the supervised baseline, for each fraction and seed.
    supervised_config: Path
    #: LightningCLI config of distillation, for each fraction and seed.
    distill_config: Path
    #: A SimCLRv2 checkpoint to reuse; None pretrains once with *pretrain_config*.
    checkpoint: Path | None = None
    #: Extra LightningCLI arguments given to every stage.
    extra_args: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        """Refuse fractions and seeds that would fail or clash, before any run.

        Raises:
            ValueError: for a fraction outside (0, 1], a seed outside
                [0, 2**32), a fraction or seed given twice (both runs would
                share one directory), or a stage argument that names the network
                (it would reach every stage, the distilled student included).
        """
        for fraction in self.fractions:
            if not 0 < fraction <= 1:
                msg = (
                    f"--fractions takes shares of the labelled patches in (0, 1], "
                    f"got {fraction:g}; pass e.g. --fractions 0.01 0.1 1 for 1%, "
                    "10% and all."
                )
                raise ValueError(msg)
        for seed in self.seeds:
            if not 0 <= seed < 2**32:
                msg = (
                    f"--seeds takes whole numbers from 0 to {2**32 - 1}, got {seed}; "
                    "pass e.g. --seeds 0 1 2."
                )
                raise ValueError(msg)
        # Compared as they name the runs: a fraction to 6 significant digits.
        named = (
            ("fractions", [fraction_name(f) for f in self.fractions]),
            ("seeds", [str(int(s)) for s in self.seeds]),
        )
        for name, names in named:
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                msg = (
                    f"--{name} lists {', '.join(repeated)} more than once (as the "
                    "runs are named, fractions to 6 significant digits); give each "
                    "once (a repeat would redo the same run in the same directory)."
                )
                raise ValueError(msg)
        networks = _options(self.extra_args, NETWORK_OPTIONS)
        if networks:
            option = networks[0][0]
            msg = (
                f"Stage arguments go to every stage, so {option} would change the "
                "pretrained encoder, the fine-tuned and supervised networks and the "
                "distilled student alike; change one stage's network in its config "
                "(--pretrain-config, --finetune-config, --supervised-config, "
                "--distill-config or --config-dir) instead."
            )
            raise ValueError(msg)
        for option, value in _options(self.extra_args, DEVICE_OPTIONS):
            if value not in ("1", "auto", "single_device"):
                msg = (
                    f"The experiment runs every stage in one process on one device, "
                    f"so it cannot take {option} {value}; run the stages one by one "
                    "with `torchgeo-simclr fit --config ...` to train on several "
                    "devices."
                )
                raise ValueError(msg)


def _options(arguments: Sequence[str], names: Sequence[str]) -> list[tuple[str, str]]:
    """The ``(option, value)`` pairs of *names* among LightningCLI arguments.

    Args:
        arguments: e.g. ``["--trainer.devices", "2", "--seed_everything=1"]``.
        names: the options to find.

    Returns:
        Each occurrence, in order, ``--option=value`` or ``--option value``.
    """
    found = []
    for i, argument in enumerate(arguments):
        option, equals, value = argument.partition("=")
        if option in names:
            if not equals:
                value = arguments[i + 1] if i + 1 < len(arguments) else ""
            found.append((option, value))
    return found


@dataclass(frozen=True)
class RunOutcome:
    """What one fit + test run leaves behind."""

    #: The checkpoint written last.
    checkpoint: Path
    #: Test metrics (``test_f1``, ...).
    metrics: dict[str, float]
    #: The trained task.
    task: Any
    #: Labelled training patches (None without a label fraction).
    n_labels: int | None
    #: The datamodule's split in words (its ``split_summary``), if it says.
    split_summary: str | None = None


def run_stage(
    config: Path,
    run_dir: Path,
    arguments: Sequence[str],
    test: bool = True,
    guard: dict[str, Any] | None = None,
) -> RunOutcome:
    """Fit one stage with LightningCLI in this process, then test the final model.

    Args:
        config: the stage's YAML config.
        run_dir: where logs and checkpoints go (``run_dir/checkpoints/last.ckpt``).
        arguments: further LightningCLI arguments (root, seed, fraction, ...).
        test: score the final model on the test blocks.
        guard: arguments of a :class:`~torchgeo_simclr.split_guard.SplitGuard`
            that stops the run if its data split is not the experiment's
            (None: no check).

    Returns:
        The checkpoint, the test metrics and the task.
    """
    from .lightning_cli import run_cli

    # A run cut off earlier leaves a partial directory; start it afresh.
    shutil.rmtree(run_dir, ignore_errors=True)
    checkpoint_callback = {
        "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
        # last.ckpt only: without a monitor an epoch file would be a copy of it.
        "init_args": {
            "dirpath": str(run_dir / "checkpoints"),
            "save_top_k": 0,
            "save_last": True,
        },
    }
    callbacks: list[dict[str, Any]] = [checkpoint_callback]
    if guard is not None:
        callbacks.append(
            {"class_path": "torchgeo_simclr.split_guard.SplitGuard", "init_args": guard}
        )
    cli = run_cli(
        [
            "--config",
            str(config),
            *arguments,
            "--trainer.default_root_dir",
            str(run_dir),
            "--trainer.callbacks",
            json.dumps(callbacks),
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
            # Runs are scored once, on the test blocks, with their final
            # weights; validation would pick nothing and costs time.
            "--trainer.limit_val_batches",
            "0",
            "--trainer.num_sanity_val_steps",
            "0",
            # One device (configs may say auto): DDP would start other ranks
            # that run this stage's fit alone, not its test or later stages.
            "--trainer.devices",
            "1",
        ]
    )
    metrics: dict[str, float] = {}
    if test:
        with keyboard_interrupts():
            results = cli.trainer.test(
                cli.model, datamodule=cli.datamodule, verbose=False
            )
        metrics = {key: float(value) for key, value in results[0].items()}
    path = Path(cli.trainer.checkpoint_callback.last_model_path)  # type: ignore[union-attr]
    return RunOutcome(
        path,
        metrics,
        cli.model,
        getattr(cli.datamodule, "n_labels", None),
        getattr(cli.datamodule, "split_summary", None),
    )


def read_results(path: Path) -> list[dict[str, str]]:
    """Read ``results.csv`` (empty when it does not exist yet).

    Args:
        path: the CSV file.

    Returns:
        Its rows.
    """
    if not path.exists():
        return []
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def _write_results(path: Path, rows: list[dict[str, Any]]) -> None:
    with (
        replaced_when_complete(path) as temporary,
        temporary.open("w", newline="") as file,
    ):
        writer = csv.DictWriter(file, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def fraction_name(fraction: float) -> str:
    """A label fraction as runs and result rows name it (6 significant digits).

    Args:
        fraction: e.g. 0.01.

    Returns:
        E.g. ``"0.01"``.
    """
    return f"{float(fraction):g}"


def _key(method: str, fraction: float, seed: int) -> tuple[str, str, str]:
    return method, fraction_name(fraction), str(int(seed))


def _row(
    method: str,
    fraction: float,
    seed: int,
    outcome: RunOutcome,
    speed: dict[str, float],
    seconds: float,
) -> dict[str, Any]:
    model = outcome.task.model
    row: dict[str, Any] = {
        "method": method,
        "fraction": fraction_name(fraction),
        "n_labels": outcome.n_labels,
        "seed": seed,
        "params": sum(p.numel() for p in model.parameters()),
        "inference_img_s": round(speed["model"], 1),
        "speedup_vs_teacher": round(speed["model"] / speed["teacher"], 2)
        if "teacher" in speed
        else "",
        "model": model.spec.model,
        "seconds": round(seconds, 1),
        "checkpoint": str(outcome.checkpoint),
    }
    for name in ("f1", "precision", "recall", "accuracy", "auroc"):
        row[name] = round(outcome.metrics[f"test_{name}"], 4)
    return row


def _stage(
    plan: ExperimentPlan,
    method: str,
    fraction: float,
    seed: int,
    pretrained: Path,
    done: dict[tuple[str, str, str], dict[str, Any]],
    supervised: Sequence[str] = (),
) -> tuple[Path, list[str]]:
    """The config and LightningCLI arguments of one run (besides *plan*'s own).

    *supervised* are :func:`supervised_arguments`, for the supervised runs.
    """
    arguments = [
        "--seed_everything",
        str(seed),
        "--data.init_args.label_fraction",
        str(fraction),
        "--data.init_args.label_seed",
        str(seed),
    ]
    if method == "simclr":
        return plan.finetune_config, [
            *arguments,
            "--model.init_args.checkpoint",
            str(pretrained),
        ]
    if method == "supervised":
        return plan.supervised_config, [*arguments, *supervised]
    teacher = done.get(_key("simclr", fraction, seed))
    if teacher is None:
        msg = (
            f"The distillation for fraction {fraction:g}, seed {seed} needs the "
            f"fine-tuned model, which {plan.out / 'results.csv'} does not list; "
            "delete the distilled rows or rerun the fine-tuning."
        )
        raise RuntimeError(msg)
    return plan.distill_config, [
        *arguments,
        "--model.init_args.teacher",
        teacher["checkpoint"],
    ]


def _speed(timer: FreshProcessTimer, outcome: RunOutcome) -> dict[str, float]:
    checkpoints: dict[str, str | Path] = {"model": outcome.checkpoint}
    teacher = outcome.task.hparams.get("teacher")
    if teacher is not None:
        checkpoints["teacher"] = teacher
    return timer(checkpoints, outcome.task.data_metadata.patch_size)


#: Where an experiment records the settings its rows were made with.
SETTINGS_FILE = "settings.json"

#: Hex digits of a file's SHA-256 recorded in the settings.
DIGEST_LENGTH = 16

#: Settings that records of earlier versions lack.
LATER_SETTINGS = ("checkpoint SHA-256", "config contents (SHA-256)")

#: Key of the recorded data splits in the settings: each method's (and
#: ``pretrain``'s) :func:`~torchgeo_simclr.split_guard.split_record`, written
#: once its first run has made it.
DATA_SPLIT = "data split"


def _setting(value: Any) -> str:
    """A recorded setting in words (None, for the checkpoint, is pretraining)."""
    return "none (pretrained in --out)" if value is None else repr(value)


def check_settings(plan: ExperimentPlan, resuming: bool) -> None:
    """Record the settings that make a row, or check them against the record.

    Rows are reused by method, fraction and seed only, so resuming with
    another encoder, scene, config (by path or an edited file) or stage
    arguments would mix two experiments in one table. Fractions and seeds may
    change: new ones add rows.

    Args:
        plan: this run's plan.
        resuming: whether *plan*'s ``--out`` already holds runs (rows of
            ``results.csv``, or a pretrained encoder that later runs reuse).

    Raises:
        ValueError: if those runs were made with other settings.
    """
    configs = (
        plan.pretrain_config,
        plan.finetune_config,
        plan.supervised_config,
        plan.distill_config,
    )
    settings = {
        "root": str(plan.root.resolve()),
        "checkpoint": None
        if plan.checkpoint is None
        else str(plan.checkpoint.resolve()),
        "checkpoint SHA-256": None
        if plan.checkpoint is None
        else file_digest(plan.checkpoint)[:DIGEST_LENGTH],
        "configs": [str(config.resolve()) for config in configs],
        "config contents (SHA-256)": [
            file_digest(config)[:DIGEST_LENGTH] for config in configs
        ],
        "stage arguments": list(plan.extra_args),
    }
    path = plan.out / SETTINGS_FILE
    if resuming and path.exists():
        recorded = json.loads(path.read_text())
        if recorded.get(DATA_SPLIT) is not None:
            # Checked by every run (SplitGuard), not here: the data are read
            # by the stages.
            settings[DATA_SPLIT] = recorded[DATA_SPLIT]
        # A record from before the contents were recorded is not checked for them.
        unrecorded = {k for k in LATER_SETTINGS if k not in recorded}
        changed = [
            k
            for k in settings
            if k not in unrecorded and recorded.get(k) != settings[k]
        ]
        if changed:
            differences = "; ".join(
                f"{k} {_setting(recorded.get(k))} there, {_setting(settings[k])} now"
                for k in changed
            )
            msg = (
                f"--out {str(plan.out)!r} holds runs made with other settings "
                f"({differences}); pass another --out for a new experiment, or the "
                "same settings to resume this one."
            )
            raise ValueError(msg)
    with replaced_when_complete(path) as partial:
        partial.write_text(json.dumps(settings, indent=2) + "\n")


def check_root(plan: ExperimentPlan) -> None:
    """Refuse a data root that does not exist, before anything is written.

    Each stage's datamodule would refuse it only once ``settings.json``, the
    run folder and the progress bar were made. What the folder must hold
    depends on the configs' datamodule, so only its existence is checked.

    Args:
        plan: this run's plan; a ``--data.init_args.root`` among its stage
            arguments overrides its ``root`` as it does in every stage, and a
            ``--config`` after both may set another, which is not checked here.

    Raises:
        FileNotFoundError: naming the option, if the root does not exist.
    """
    given = _options(plan.extra_args, ("--data.init_args.root", "--config"))
    option, root = given[-1] if given else ("--root", str(plan.root))
    if option == "--config":
        return  # it may set another root; the stages check the one they read
    if root.startswith("/vsi") or os.path.exists(root):
        return
    where = (
        ""
        if os.path.isabs(root)
        else f" (read from the working directory {os.getcwd()})"
    )
    if _reads_bigearthnet(plan):
        from .datasets import BigEarthNetIrrigation

        url = BigEarthNetIrrigation.metadata["s2"]["url"]
        what = (
            "the BigEarthNet-S2 v1.0 folder the stages read (download "
            f"{url} and extract it into e.g. data/bigearthnet, the default with "
            "--preset bigearthnet)"
        )
    else:
        what = (
            "the folder of the imagery and labels the stages read, e.g. one made "
            "by `torchgeo-simclr sample-data --root DIR`"
        )
    msg = f"{option} {root!r} does not exist{where}; pass {what}."
    raise FileNotFoundError(msg)


def _reads_bigearthnet(plan: ExperimentPlan) -> bool:
    """Whether the pretraining config reads BigEarthNet (for the root's message)."""
    try:
        return "BigEarthNetIrrigationDataModule" in plan.pretrain_config.read_text()
    except OSError:
        return False


#: What makes a network besides its head: the timm backbone, its input bands
#: and further timm options (as FineTuneTask and SimCLRv2Task name them).
NETWORK = ("model", "in_channels", "backbone_kwargs")


def _network(
    settings: dict[str, Any], model: str, in_channels: int, channels: int | None
) -> dict[str, Any]:
    """The :data:`NETWORK` of a task's settings.

    Args:
        settings: a checkpoint's metadata or a config's ``model.init_args``.
        model: the task's backbone where *settings* leave it unset.
        in_channels: the task's bands where *settings* leave them unset.
        channels: ``--model.init_args.in_channels`` among the stage arguments,
            which a config's own setting gives way to (None: not given).

    Returns:
        ``model``, ``in_channels`` and ``backbone_kwargs`` (a dict).
    """
    return {
        "model": settings.get("model") or model,
        "in_channels": int(channels or settings.get("in_channels") or in_channels),
        "backbone_kwargs": dict(settings.get("backbone_kwargs") or {}),
    }


def _described(network: dict[str, Any]) -> str:
    """A :data:`NETWORK` in words, e.g. ``resnet50 (12 bands)``."""
    options = network["backbone_kwargs"]
    extra = f", backbone_kwargs {json.dumps(options)}" if options else ""
    return f"{network['model']} ({network['in_channels']} bands{extra})"


def _model_settings(config: Path) -> dict[str, Any] | None:
    """A stage config's ``model.init_args`` (None where it has none to read)."""
    import yaml

    try:
        model = yaml.safe_load(config.read_text()).get("model")
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    settings = model.get("init_args", {}) if isinstance(model, dict) else None
    return settings if isinstance(settings, dict) else None


def _encoder_network(
    plan: ExperimentPlan, meta: dict[str, Any] | None, channels: int | None
) -> tuple[dict[str, Any], str] | None:
    """The SimCLR encoder's network, and where it was read from.

    Args:
        plan: the experiment's plan.
        meta: the metadata of ``--checkpoint``, if read; otherwise that of
            ``--checkpoint`` or of the encoder pretrained in ``--out`` where
            it exists, or else what the pretraining config builds.
        channels: ``--model.init_args.in_channels`` among the stage arguments.

    Returns:
        The :data:`NETWORK` and its source in words; None when the
        pretraining config cannot be read.
    """
    path = plan.checkpoint or _pretrained_path(plan)
    if meta is None and path.is_file():
        meta = read_checkpoint(path, ("simclr",))[1]
    if meta is not None:
        return _network(meta, "", 0, None), f"checkpoint {str(path)!r}"
    settings = _model_settings(plan.pretrain_config)
    if settings is None:
        return None
    import inspect

    from .tasks import SimCLRv2Task

    defaults = inspect.signature(SimCLRv2Task).parameters
    network = _network(
        settings,
        defaults["model"].default,
        defaults["in_channels"].default,
        channels,
    )
    return network, f"pretraining config {str(plan.pretrain_config)!r}"


def supervised_arguments(
    plan: ExperimentPlan, meta: dict[str, Any] | None = None
) -> tuple[list[str], str | None]:
    """The stage arguments that make the supervised baseline the encoder's network.

    The experiment compares one network with and without pretraining. The
    installed supervised configs name a backbone (ResNet-18 for the
    quickstart), so a ``--checkpoint`` or ``--pretrain-config`` of another
    would be compared with it; the supervised runs get the encoder's
    ``model``, ``in_channels`` and ``backbone_kwargs`` instead. A supervised
    config of the user's own (not an installed one) that names another
    network is refused.

    Args:
        plan: the experiment's plan.
        meta: ``--checkpoint``'s metadata, if read (see :func:`_encoder_network`).

    Returns:
        The arguments (none when the supervised config builds the encoder's
        network already), and a line that says what they change (None then).

    Raises:
        ValueError: if the user's own supervised config names another network.
    """
    given = _options(plan.extra_args, ("--model.init_args.in_channels",))
    channels = int(given[-1][1]) if given and given[-1][1].isdigit() else None
    encoder = _encoder_network(plan, meta, channels)
    settings = _model_settings(plan.supervised_config)
    if encoder is None or settings is None or settings.get("checkpoint"):
        return [], None
    network, source = encoder
    from .tasks.finetune import DEFAULT_IN_CHANNELS, DEFAULT_MODEL

    own = _network(settings, DEFAULT_MODEL, DEFAULT_IN_CHANNELS, channels)
    # The baseline may add options of its own (e.g. drop_path_rate), not drop
    # or change the encoder's.
    kwargs = {**own["backbone_kwargs"], **network["backbone_kwargs"]}
    wanted = {**network, "backbone_kwargs": kwargs}
    differ = [name for name in NETWORK if own[name] != wanted[name]]
    if not differ:
        return [], None
    config = plan.supervised_config
    from .cli.training import config_dir

    if config.resolve().parent != config_dir().resolve():
        fixes = [
            f"{name}: {json.dumps(wanted[name])}"
            if name == "backbone_kwargs"
            else f"{name}: {wanted[name]}"
            for name in differ
        ]
        fix = " and ".join([", ".join(fixes[:-1]), fixes[-1]] if fixes[1:] else fixes)
        msg = (
            f"The supervised config {str(config)!r} trains {_described(own)} but "
            f"the SimCLR encoder ({source}) is {_described(network)}, and the "
            "experiment compares the same network with and without pretraining; "
            f"set {fix} under model.init_args in {str(config)!r}, or use the "
            "installed supervised config, which the experiment gives the "
            "encoder's network."
        )
        raise ValueError(msg)
    arguments: list[str] = []
    for name in differ:
        value = wanted[name]
        text = json.dumps(value) if name == "backbone_kwargs" else str(value)
        arguments += [f"--model.init_args.{name}", text]
    line = (
        f"supervised: trains {_described(wanted)}, the SimCLR encoder's network "
        f"({source}), in place of {config.name}'s {_described(own)}, so both "
        "arms are the same network"
    )
    return arguments, line


def run_experiment(plan: ExperimentPlan, progress: bool = True) -> list[dict[str, Any]]:
    """Run (or resume) the experiment and write ``results.csv`` and the plot.

    Args:
        plan: what to run.
        progress: show a progress bar over runs.

    Returns:
        All result rows, earlier ones included.
    """
    meta = None
    if plan.checkpoint is not None:
        # A wrong file fails here, before anything is written or run.
        meta = read_checkpoint(plan.checkpoint, ("simclr",))[1]
    check_root(plan)
    if plan.out.exists() and not plan.out.is_dir():
        msg = (
            f"--out {str(plan.out)!r} is a file; pass a folder (made if missing) "
            "for the experiment's runs and results."
        )
        raise ValueError(msg)
    results = plan.out / "results.csv"
    rows: list[dict[str, Any]] = list(read_results(results))
    done = {_key(r["method"], float(r["fraction"]), int(r["seed"])): r for r in rows}
    todo = [
        (fraction, seed, method)
        for fraction in plan.fractions
        for seed in plan.seeds
        for method in METHODS
        if _key(method, fraction, seed) not in done
    ]
    baseline = any(m == "supervised" for *_, m in todo)
    if baseline:
        # A supervised config naming another network fails before any run.
        supervised_arguments(plan, meta)
    plan.out.mkdir(parents=True, exist_ok=True)
    # Rows and the pretrained encoder are all a later run reuses (a stage's
    # folder is cleared before it runs), so a run that failed before either,
    # e.g. on a mistyped --root, leaves --out free for the corrected command.
    resuming = bool(rows) or _pretrained_path(plan).exists()
    check_settings(plan, resuming=resuming)
    split = DataSplit(plan, _recorded_splits(plan, rows) if resuming else {})
    common = ["--data.init_args.root", str(plan.root), *plan.extra_args]
    pretrained = plan.checkpoint
    needs_pretraining = pretrained is None and any(m == "simclr" for *_, m in todo)
    with tqdm(
        total=len(todo) + int(needs_pretraining),
        desc="experiment",
        unit="run",
        disable=not progress,
    ) as bar:
        pretrained = _pretrain(plan, pretrained, needs_pretraining, common, bar, split)
        # Read again from the encoder pretrained just now, if it was.
        supervised, line = supervised_arguments(plan, meta) if baseline else ([], None)
        if line is not None and not bar.disable:
            bar.write(line)
        _run_all(plan, todo, pretrained, common, rows, done, bar, split, supervised)
    plot_results(rows, plan.out / "f1_vs_fraction.png")
    return rows


class DataSplit:
    """The data split of each stage: recorded in the settings, checked on resuming.

    Each method's runs (and pretraining) record the split their data made the
    first time. A later invocation checks every run against its method's
    split, or, for a method that has not run yet, against pretraining's: a
    root whose patches or imagery changed in between makes another split and
    is refused (:class:`~torchgeo_simclr.split_guard.SplitGuard`). Within one
    invocation, a method is checked against its own first run only, so stage
    configs that cut the data differently (another patch size) still run.
    """

    def __init__(
        self, plan: ExperimentPlan, earlier: dict[str, dict[str, Any]]
    ) -> None:
        """Initialise a new DataSplit.

        Args:
            plan: the experiment's plan.
            earlier: the splits of earlier invocations' runs, by method
                (``pretrain``, ``simclr``, ``supervised``, ``distilled``).
        """
        #: The experiment's plan.
        self.plan = plan
        #: Splits recorded by earlier invocations, by method.
        self.earlier = earlier
        #: Splits first recorded by this invocation, by method.
        self.made: dict[str, dict[str, Any]] = {}
        #: Whether the split was printed in this invocation.
        self.printed = False

    def guard(self, method: str) -> dict[str, Any] | None:
        """The :class:`~torchgeo_simclr.split_guard.SplitGuard` of a run.

        Args:
            method: ``pretrain`` or one of :data:`METHODS`.

        Returns:
            Its arguments, None while there is no split to check against.
        """
        recorded = (
            self.earlier.get(method)
            or self.made.get(method)
            or self.earlier.get("pretrain")
        )
        if recorded is None:
            return None
        return {
            "split": recorded["split"],
            "held_out": recorded.get("held_out"),
            "root": str(self.plan.root),
            "out": str(self.plan.out),
        }

    def ran(self, method: str, outcome: RunOutcome, bar: tqdm) -> None:
        """Record a method's split on its first run, and print a split once.

        Args:
            method: ``pretrain`` or one of :data:`METHODS`.
            outcome: its finished run.
            bar: the progress bar to print beside.
        """
        made = split_record(getattr(outcome.task, "data_metadata", None))
        if made is None:
            return
        if method not in self.earlier and method not in self.made:
            self.made[method] = made
            _record_splits(self.plan, {**self.earlier, **self.made})
        if not self.printed and not bar.disable:
            bar.write(
                outcome.split_summary
                or f"Data split {made['split']} of {self.plan.root}"
            )
        self.printed = True


def _recorded_splits(
    plan: ExperimentPlan, rows: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The splits the experiment's earlier runs were made on, by method.

    The settings record them; an experiment of an earlier version did not,
    and its pretrained encoder and each method's first row's checkpoint tell
    them (and are recorded).

    Args:
        plan: the experiment's plan.
        rows: its result rows.

    Returns:
        :func:`~torchgeo_simclr.split_guard.split_record` of each method
        (``pretrain`` included) that is known.
    """
    settings = plan.out / SETTINGS_FILE
    if settings.exists():
        recorded = json.loads(settings.read_text()).get(DATA_SPLIT)
        if recorded:
            return dict(recorded)
    candidates = (
        [] if plan.checkpoint is not None else [("pretrain", _pretrained_path(plan))]
    )
    candidates += [
        (row["method"], Path(row["checkpoint"]))
        for row in rows
        if row.get("checkpoint")
    ]
    found: dict[str, dict[str, Any]] = {}
    for method, path in candidates:
        if method in found or not path.is_file():
            continue
        if (made := checkpoint_split(path)) is not None:
            found[method] = made
    if found:
        _record_splits(plan, found)
    return found


def _record_splits(plan: ExperimentPlan, splits: dict[str, dict[str, Any]]) -> None:
    """Write the splits, by method, into the experiment's settings file."""
    path = plan.out / SETTINGS_FILE
    settings = json.loads(path.read_text()) if path.exists() else {}
    settings[DATA_SPLIT] = splits
    with replaced_when_complete(path) as partial:
        partial.write_text(json.dumps(settings, indent=2) + "\n")


def _pretrained_path(plan: ExperimentPlan) -> Path:
    """Where the experiment keeps the encoder it pretrained itself."""
    return plan.out / "runs" / "pretrain.ckpt"


def _pretrain(
    plan: ExperimentPlan,
    pretrained: Path | None,
    needs_pretraining: bool,
    common: list[str],
    bar: tqdm,
    split: DataSplit,
) -> Path:
    """The encoder to fine-tune: *pretrained*, or one pretrained in ``--out``."""
    if pretrained is None:
        # Written (renamed) only when pretraining has finished, so a resumed
        # experiment never fine-tunes from a half-trained encoder.
        pretrained = _pretrained_path(plan)
        if needs_pretraining and not pretrained.exists():
            bar.set_postfix_str("pretrain")
            start = time.perf_counter()
            outcome = run_stage(
                plan.pretrain_config,
                plan.out / "runs" / "pretrain",
                common,
                test=False,
                guard=split.guard("pretrain"),
            )
            os.replace(outcome.checkpoint, pretrained)
            split.ran("pretrain", outcome, bar)
            if not bar.disable:
                bar.write(
                    f"pretrain: {pretrained} ({time.perf_counter() - start:.0f} s)"
                )
        if needs_pretraining:
            bar.update()
    return pretrained


def _run_all(
    plan: ExperimentPlan,
    todo: list[tuple[float, int, str]],
    pretrained: Path,
    common: list[str],
    rows: list[dict[str, Any]],
    done: dict[tuple[str, str, str], dict[str, Any]],
    bar: tqdm,
    split: DataSplit,
    supervised: Sequence[str] = (),
) -> None:
    """Fine-tune, train and distil each run of *todo*, appending to *rows*.

    *supervised* are :func:`supervised_arguments`, for the supervised runs.
    """
    results = plan.out / "results.csv"
    with FreshProcessTimer() as timer:
        for fraction, seed, method in todo:
            bar.set_postfix_str(f"{method} fraction={fraction:g} seed={seed}")
            config, arguments = _stage(
                plan, method, fraction, seed, pretrained, done, supervised
            )
            run_dir = plan.out / "runs" / f"{method}_f{fraction_name(fraction)}_s{seed}"
            start = time.perf_counter()
            outcome = run_stage(
                config, run_dir, [*common, *arguments], guard=split.guard(method)
            )
            seconds = time.perf_counter() - start
            split.ran(method, outcome, bar)
            speed = _speed(timer, outcome)
            row = _row(method, fraction, seed, outcome, speed, seconds)
            if not bar.disable:
                bar.write(
                    f"{method} fraction={fraction:g} seed={seed}: {row['n_labels']} "
                    f"labelled patches, test F1 {row['f1']:.4f}, AUROC "
                    f"{row['auroc']:.4f} ({seconds:.0f} s)"
                )
            rows.append(row)
            done[_key(method, fraction, seed)] = row
            _write_results(results, rows)
            bar.update()


def backbones(rows: Sequence[dict[str, Any]]) -> str:
    """The backbones of result rows in words, e.g. ``resnet18``.

    Args:
        rows: result rows (of one method).

    Returns:
        Their ``model`` names, sorted and joined by `` / `` where they differ
        (rows of an earlier version may lack them: then empty).
    """
    return " / ".join(sorted({str(r.get("model") or "") for r in rows} - {""}))


def summarise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and spread over seeds per method and fraction.

    Args:
        rows: result rows.

    Returns:
        One row per (fraction, method): ``n`` seeds, ``n_labels``, the
        backbone (``model``), mean and sample standard deviation of F1, mean
        AUROC, params and img/s.
    """
    groups: dict[tuple[float, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[float(row["fraction"]), row["method"]].append(row)
    out = []
    for (fraction, method), group in sorted(
        groups.items(), key=lambda item: (item[0][0], METHODS.index(item[0][1]))
    ):
        f1 = torch.tensor([float(r["f1"]) for r in group])
        out.append(
            {
                "fraction": fraction,
                "method": method,
                "n": len(group),
                "n_labels": group[0]["n_labels"],
                "model": backbones(group),
                "f1_mean": float(f1.mean()),
                "f1_std": float(f1.std()) if len(group) > 1 else 0.0,
                "auroc_mean": sum(float(r["auroc"]) for r in group) / len(group),
                "params": int(group[0]["params"]),
                "img_s": sum(float(r["inference_img_s"]) for r in group) / len(group),
            }
        )
    return out


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a Markdown table.

    Args:
        rows: result rows.

    Returns:
        The table text.
    """
    lines = [
        "| fraction | labelled patches | method | backbone | seeds | F1 mean ± sd "
        "| AUROC mean | params | inference img/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summarise(rows):
        spread = f"± {s['f1_std']:.3f}" if s["n"] > 1 else "(one seed)"
        lines.append(
            f"| {s['fraction']:g} | {s['n_labels']} | {s['method']} | {s['model']} "
            f"| {s['n']} | {s['f1_mean']:.3f} {spread} | {s['auroc_mean']:.3f} | "
            f"{s['params'] / 1e6:.1f} M | {s['img_s']:.0f} |"
        )
    return "\n".join(lines)


def legend_labels(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The plot's legend entry of each method, naming its backbone.

    Args:
        rows: result rows.

    Returns:
        E.g. ``supervised (resnet18, no pretraining)``, by method.
    """
    titles = {
        "simclr": ("SimCLRv2 fine-tuned", None),
        "supervised": ("supervised", "no pretraining"),
        "distilled": ("distilled student", None),
    }
    labels = {}
    for method, (title, note) in titles.items():
        said = [backbones([r for r in rows if r["method"] == method]), note]
        notes = ", ".join(n for n in said if n)
        labels[method] = f"{title} ({notes})" if notes else title
    return labels


#: How each method is drawn in :func:`plot_results`: colour (Okabe-Ito, told
#: apart by colour-blind readers), marker and line style, so the lines also
#: differ in greyscale and where colours are confused.
METHOD_STYLES: dict[str, dict[str, str]] = {
    "simclr": {"color": "#0072B2", "marker": "o", "linestyle": "-"},
    "supervised": {"color": "#D55E00", "marker": "s", "linestyle": "--"},
    "distilled": {"color": "#009E73", "marker": "^", "linestyle": ":"},
}


def percent_label(fraction: float) -> str:
    """A label fraction as the x axis names it, e.g. ``1 %`` for 0.01.

    Args:
        fraction: the share of labelled training patches used, 0-1.

    Returns:
        The percentage, without trailing zeros.
    """
    return f"{100 * fraction:.4g} %"


def label_count(value: object) -> int | None:
    """The ``n_labels`` of a result row, or None where it is unknown.

    Args:
        value: the row's ``n_labels``: an int, its text as read back from
            ``results.csv``, or None, ``""`` or ``"None"`` (a run whose
            datamodule did not report it).

    Returns:
        The number of labelled training patches, or None.
    """
    if value is None or str(value).strip() in ("", "None"):
        return None
    return int(str(value))


def fraction_counts(rows: Sequence[dict[str, Any]]) -> dict[float, int | None]:
    """The number of labelled training patches of each label fraction.

    Args:
        rows: result rows.

    Returns:
        For each fraction (0-1) in *rows*, the number of labelled patches its
        runs used when all of them report the same one, else None (unknown,
        or differing between methods).
    """
    counts: dict[float, set[int | None]] = defaultdict(set)
    for r in rows:
        counts[float(r["fraction"])].add(label_count(r["n_labels"]))
    return {f: next(iter(n)) if len(n) == 1 else None for f, n in counts.items()}


def seeds_caption(rows: Sequence[dict[str, Any]]) -> str:
    """The plot's note on what its lines, bands and dots are.

    Args:
        rows: result rows.

    Returns:
        E.g. ``"Lines: mean over 3 seeds; bands: lowest to highest seed; dots:
        single seeds."``, saying ``1 to 3 seeds`` when the counts differ.
    """
    seeds: dict[tuple[str, float], set[str]] = defaultdict(set)
    for r in rows:
        seeds[r["method"], float(r["fraction"])].add(str(r["seed"]))
    counts = sorted({len(s) for s in seeds.values()})
    if not counts:
        return ""
    n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
    return (
        f"Lines: mean over {n} seed{'' if counts == [1] else 's'}; bands: lowest "
        "to highest seed; dots: single seeds."
    )


def results_figure(rows: Sequence[dict[str, Any]]) -> "Figure":
    """Test F1 against the label fraction, one line per method.

    Lines join the means over seeds; the shaded band spans the lowest and
    highest seed; dots are single seeds (a caption under the title says so).
    Each method has its own colour, marker and line style. The x axis is
    logarithmic, labelled in percent of the labelled training patches (with
    their number where every run of that fraction reports the same one; see
    :func:`fraction_counts`).

    Args:
        rows: result rows.

    Returns:
        The figure, one axes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    labels = legend_labels(rows)
    fig, ax = plt.subplots(figsize=(7, 4.8))
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        fractions = sorted({float(r["fraction"]) for r in mine})
        values = [
            [float(r["f1"]) for r in mine if float(r["fraction"]) == f]
            for f in fractions
        ]
        style = METHOD_STYLES[method]
        ax.plot(
            fractions,
            [sum(v) / len(v) for v in values],
            label=labels[method],
            color=style["color"],
            marker=style["marker"],
            linestyle=style["linestyle"],
            markersize=7,
        )
        ax.fill_between(
            fractions,
            [min(v) for v in values],
            [max(v) for v in values],
            color=style["color"],
            alpha=0.15,
        )
        for fraction, v in zip(fractions, values, strict=True):
            ax.scatter(
                [fraction] * len(v),
                v,
                color=style["color"],
                marker=style["marker"],
                s=12,
                alpha=0.6,
            )
    ax.set_xscale("log")
    counts = fraction_counts(rows)
    fractions = sorted(counts)
    numbered = any(n is not None for n in counts.values())
    ax.xaxis.set_major_locator(FixedLocator(fractions))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels(
        [
            percent_label(f) + ("" if counts[f] is None else f"\n({counts[f]:,})")
            for f in fractions
        ]
    )
    ax.set_xlabel(
        "labelled training patches used: % of all"
        + (" (number of patches)" if numbered else "")
        + ", log scale",
        labelpad=2,
    )
    ax.set_ylabel("test F1 (irrigated)")
    ax.set_title("Label efficiency on the held-out test set", pad=20)
    ax.text(
        0.5,
        1.02,
        seeds_caption(rows),
        transform=ax.transAxes,
        ha="center",
        va="bottom",
        fontsize="small",
    )
    ax.grid(True, which="major", alpha=0.3)
    # Below the axes, so it never hides a point: in a row, or one entry a
    # line where the backbones' names make the row wider than the figure.
    for columns in (3, 1):
        legend = ax.legend(
            loc="upper center",
            bbox_to_anchor=(0.5, -0.2 if numbered else -0.16),
            ncol=columns,
            fontsize="small",
            handlelength=3,
        )
        width = legend.get_window_extent().width
        if width <= fig.bbox.width:
            break
    fig.tight_layout()
    return fig


def plot_results(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Write :func:`results_figure` of *rows* as a PNG.

    Args:
        rows: result rows.
        path: the PNG to write (replaced only once complete).
    """
    import matplotlib.pyplot as plt

    fig = results_figure(rows)
    try:
        with replaced_when_complete(path) as temporary:
            fig.savefig(temporary, dpi=120, bbox_inches="tight", pad_inches=0.1)
    finally:
        plt.close(fig)
