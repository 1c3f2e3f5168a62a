"""The training commands: ``fit``, ``probe``, ``demo`` and ``experiment``.

:func:`_fit` also runs LightningCLI's ``validate`` and ``test``, and its
``predict`` for ``torchgeo-simclr predict --config``.
"""

import argparse
import json
import sys
from importlib.resources import files
from pathlib import Path

#: The package that holds the YAML configs: the repository's conf/, which
#: pyproject.toml installs as this subpackage (a wheel carries the files).
CONF_PACKAGE = "torchgeo_simclr.conf"


def config_dir() -> Path:
    """The folder of the installed YAML configs (the repository's ``conf/``).

    Returns:
        In an editable install or a source checkout, the repository's
        ``conf/``; in a wheel's install, ``site-packages/torchgeo_simclr/conf``.
        An install made before the configs became a subpackage has no
        ``torchgeo_simclr.conf``: then the checkout's ``conf/`` beside the
        package.
    """
    try:
        return Path(str(files(CONF_PACKAGE)))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "conf"


#: Directory holding the YAML configs, in any install (see :func:`config_dir`).
CONF_DIR = config_dir()


def _fit(args: argparse.Namespace) -> None:
    """Run ``torchgeo fit``, ``validate``, ``test`` or ``predict`` in this process.

    A fit's task names the checkpoint it wrote at the end; ``validate`` and
    ``test`` print Lightning's table of scores.

    Args:
        args: ``command``, the subcommand, and ``arguments``, everything after
            ``torchgeo-simclr COMMAND``.
    """
    from ..lightning_cli import quiet_tips, run_cli

    quiet_tips()
    run_cli(args.arguments, args.command)


def _probe(args: argparse.Namespace) -> None:
    """Print the kNN probe of a checkpoint's encoder beside random weights.

    Args:
        args: the parsed ``probe`` command line.
    """
    import torch

    from ..days import parse_days
    from ..models import create_backbone
    from ..models.checkpoint import load_encoder
    from ..probe import knn_probe, probe_datamodule

    start, end = parse_days(args.start, args.end)
    encoder = load_encoder(args.checkpoint)
    if encoder.data is None:
        msg = f"Checkpoint {args.checkpoint!r} records no band list or statistics."
        raise SystemExit(msg)
    datamodule = probe_datamodule(
        encoder.data,
        args.root,
        args.labels,
        args.block_size,
        args.seed,
        class_column=args.class_column,
        class_map=dict(args.class_map) or None,
        start=start,
        end=end,
    )
    torch.manual_seed(args.seed)
    random = create_backbone(
        encoder.model,
        in_channels=len(encoder.data.bands),
        options=encoder.backbone_kwargs,
    )
    rows = [
        (name, knn_probe(network, datamodule, k=args.k, encoder=name))
        for name, network in (
            ("pretrained (SimCLRv2)", encoder.backbone),
            ("random weights", random),
        )
    ]
    patch = encoder.data.patch_size
    print(f"kNN probe (k={args.k}), {encoder.model}, patches of {patch} px:")
    header = ("accuracy", 10), ("bal. acc.", 11), ("F1", 8), ("n ref", 8), ("n test", 8)
    print(f"{'encoder':<24}" + "".join(f"{name:>{width}}" for name, width in header))
    for name, r in rows:
        print(
            f"{name:<24}{r.accuracy:>10.3f}{r.balanced_accuracy:>11.3f}{r.f1:>8.3f}"
            f"{r.n_reference:>8d}{r.n_test:>8d}"
        )


def _demo(args: argparse.Namespace) -> None:
    """Make the sample scene, pretrain on it and probe the result.

    Args:
        args: the parsed ``demo`` command line.

    Raises:
        FileNotFoundError: if the quickstart config is missing (an install
            that lost its configs); checked before the scene is made.
        RuntimeError: if the pretraining wrote no checkpoint.
    """
    from ..sample import make_sample_scene

    # The config first: a missing one must not cost the scene's half minute.
    config = CONF_DIR / "simclr_quickstart.yaml"
    if not config.is_file():
        msg = (
            f"the demo needs {config}, which the package installs with its "
            "configs; reinstall torchgeo-simclr (`pip install --force-reinstall "
            "--no-deps torchgeo-simclr`, or `pip install -e .` in a checkout)."
        )
        raise FileNotFoundError(msg)
    root = Path(args.root)
    if not (root / "crop_mapping.gpkg").exists():
        print(f"Making the embedded sample scene in {root} ...")
        make_sample_scene(root)
    record = _demo_record(config)
    checkpoint = None if args.retrain else _finished_demo(record, root)
    if checkpoint is not None:
        print(
            f"Reusing {checkpoint.resolve()}: an earlier demo pretrained it to the "
            f"end on {root} (pass --retrain to pretrain again)."
        )
    else:
        # Imported once the config is found: it loads the tasks and LightningCLI.
        from ..lightning_cli import fit, quiet_lightning

        quiet_lightning()  # a newcomer reads Lightning's tips as problems
        checkpoint = fit(["--config", str(config), "--data.init_args.root", str(root)])
        if checkpoint is None:
            msg = f"{config} wrote no checkpoint; it needs a ModelCheckpoint callback."
            raise RuntimeError(msg)
        _record_demo(record, checkpoint, root)
        print(f"\nPretrained checkpoint: {checkpoint.resolve()}")
    if args.probe:
        # The parser names this function as the demo's handler: imported here.
        from .parser import build_parser

        # The probe command's own defaults, so the two never drift apart.
        probe = build_parser().parse_args(
            ["probe", "--checkpoint", str(checkpoint), "--root", str(root)]
        )
        probe.func(probe)
    print(first_map_hint(checkpoint, root))


#: The README's sample scene, where the first map's bbox lies.
SAMPLE_ROOT = Path("data/sample")


def first_map_hint(checkpoint: Path, root: Path) -> str:
    """The demo's last lines: the README's commands of a first map.

    Args:
        checkpoint: the demo's pretrained checkpoint.
        root: the demo's sample scene.

    Returns:
        The fit and ``predict`` of the README's "Irrigation maps", naming
        *root* and *checkpoint* where they are not the configs' own, and
        the README's bbox only over its sample scene.
    """
    fit = "torchgeo fit --config conf/segment_quickstart.yaml"
    predict = (
        "torchgeo-simclr predict --checkpoint "
        f"runs/segment_quickstart/checkpoints/last.ckpt --root {root}"
    )
    if root == SAMPLE_ROOT:
        predict += " --bbox -120.86 37.03 -120.70 37.15"
    else:
        fit += f" --data.init_args.root {root}"
    if checkpoint.name != "last.ckpt":
        # A rerun's last-vN: the config names last.ckpt, an older encoder.
        fit += f" --model.init_args.checkpoint {checkpoint}"
    return (
        '\nNext, a first irrigation map (README "Irrigation maps"):\n'
        f"  {fit}\n  {predict} --out maps/sample.tif"
    )


#: Beside the quickstart's checkpoints: which one the demo finished, on what.
DEMO_RECORD = "demo.json"


def _demo_record(config: Path) -> Path:
    """Where the demo records its finished pretraining: beside its checkpoints.

    Args:
        config: the quickstart pretraining config (its checkpoint folder).

    Returns:
        ``DIRPATH/demo.json``, relative to the working directory as the
        config's ``dirpath`` is: that of its first ``ModelCheckpoint``, the
        one that writes ``last.ckpt`` (Lightning's ``checkpoint_callback``).
    """
    import yaml

    callbacks = yaml.safe_load(config.read_text())["trainer"]["callbacks"]
    saver = next(
        callback["init_args"]
        for callback in callbacks
        if callback["class_path"].endswith("ModelCheckpoint")
    )
    return Path(saver["dirpath"]) / DEMO_RECORD


def _finished_demo(record: Path, root: Path) -> Path | None:
    """The checkpoint an earlier demo finished on *root*, unchanged since.

    Args:
        record: the demo's record (see :func:`_demo_record`).
        root: the sample scene.

    Returns:
        The recorded checkpoint; None without a record, for another root, if
        the file was replaced or removed since (a resumed fit rewrites it),
        or if a file of the scene is newer (the scene was written again).
    """
    try:
        recorded = json.loads(record.read_text())
        checkpoint: Path = record.parent / str(recorded["checkpoint"])
        stat = checkpoint.stat()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    same = (
        recorded.get("root") == str(root.resolve())
        and recorded.get("size") == stat.st_size
        and recorded.get("mtime_ns") == stat.st_mtime_ns
    )
    if not same or any(
        f.stat().st_mtime_ns > stat.st_mtime_ns for f in root.rglob("*") if f.is_file()
    ):
        return None
    return checkpoint


def _record_demo(record: Path, checkpoint: Path, root: Path) -> None:
    """Record a finished pretraining, for the next demo to reuse.

    Args:
        record: where (see :func:`_demo_record`).
        checkpoint: the checkpoint the pretraining wrote last.
        root: the sample scene it was trained on.
    """
    stat = checkpoint.stat()
    record.write_text(
        json.dumps(
            {
                "checkpoint": checkpoint.name,
                "root": str(root.resolve()),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
            }
        )
    )


#: The experiment's ``--root`` when none is given, per ``--preset``.
DEFAULT_ROOTS = {"quickstart": "data/sample", "bigearthnet": "data/bigearthnet"}


def _experiment(args: argparse.Namespace) -> None:
    """Run the label-efficiency experiment and print its table.

    Args:
        args: the parsed ``experiment`` command line.

    Raises:
        FileNotFoundError: if a stage's config is missing.
        SystemExit: with 130 on Ctrl-C, having said what is kept.
    """
    from ..experiment import ExperimentPlan, markdown_table, run_experiment
    from ..outputs import not_a_file

    conf = Path(args.config_dir)
    stages = {
        name: Path(
            getattr(args, f"{name}_config") or conf / f"{stem}_{args.preset}.yaml"
        )
        for name, stem in (
            ("pretrain", "simclr"),
            ("finetune", "finetune"),
            ("supervised", "supervised"),
            ("distill", "distill"),
        )
    }
    for name, path in stages.items():
        if not path.is_file():
            missing = not_a_file(path)
            msg = (
                f"the {name} config {str(path)!r} {missing}; pass "
                f"--{name}-config or --config-dir (default: the installed configs, "
                f"{CONF_DIR})."
            )
            raise FileNotFoundError(msg)
    root = args.root or DEFAULT_ROOTS.get(args.preset, DEFAULT_ROOTS["quickstart"])
    plan = ExperimentPlan(
        root=Path(root),
        out=Path(args.out),
        fractions=args.fractions,
        seeds=args.seeds,
        pretrain_config=stages["pretrain"],
        finetune_config=stages["finetune"],
        supervised_config=stages["supervised"],
        distill_config=stages["distill"],
        checkpoint=None if args.checkpoint is None else Path(args.checkpoint),
        extra_args=args.stage_args,
    )
    # Imported once the configs are found: it loads the tasks and LightningCLI.
    from ..lightning_cli import quiet_lightning

    quiet_lightning()
    try:
        rows = run_experiment(plan)
    except KeyboardInterrupt:
        results = plan.out / "results.csv"
        kept = (
            f"Finished runs are kept in {results}"
            if results.exists()
            else "No run had finished (a finished pretraining is kept)"
        )
        print(
            f"\nInterrupted. {kept}; run the same command again to resume.",
            file=sys.stderr,
        )
        raise SystemExit(130) from None
    print(markdown_table(rows))
    print(f"\nResults: {plan.out / 'results.csv'}")
    print(f"Plot:    {plan.out / 'f1_vs_fraction.png'}")
