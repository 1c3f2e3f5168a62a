"""The training commands: ``fit``, ``probe``, ``demo`` and ``experiment``."""

import argparse
import sys
from pathlib import Path

#: Repository directory holding the YAML configs (present in a source checkout).
CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def _fit(args: argparse.Namespace) -> None:
    """Run ``torchgeo fit`` and name the checkpoint it wrote.

    Args:
        args: ``arguments``, everything after ``torchgeo-simclr fit``.
    """
    from ..lightning_cli import fit

    checkpoint = fit(args.arguments)
    if checkpoint is None:
        print("\nNo checkpoint written (fast_dev_run or no ModelCheckpoint).")
    else:
        print(f"\nCheckpoint: {checkpoint.resolve()}")
        earlier = checkpoint.with_name("last.ckpt")
        if checkpoint.name.startswith("last-v") and earlier.exists():
            # Lightning never overwrites a checkpoint: a rerun writes last-vN.
            print(
                f"({earlier.resolve()} holds an earlier run in the same folder; "
                "give the next stage the path above.)"
            )


def _probe(args: argparse.Namespace) -> None:
    """Print the kNN probe of a checkpoint's encoder beside random weights.

    Args:
        args: the parsed ``probe`` command line.
    """
    import torch

    from ..models import create_backbone
    from ..models.checkpoint import load_encoder
    from ..probe import knn_probe, probe_datamodule

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
        FileNotFoundError: if the quickstart config is missing (an installed
            package without the repository).
        RuntimeError: if the pretraining wrote no checkpoint.
    """
    from ..sample import make_sample_scene

    root = Path(args.root)
    if not (root / "crop_mapping.gpkg").exists():
        print(f"Making the embedded sample scene in {root} ...")
        make_sample_scene(root)
    config = CONF_DIR / "simclr_quickstart.yaml"
    if not config.exists():
        msg = (
            f"the demo needs {config}, which only a source checkout has; clone the "
            "repository and install it with `pip install -e .` to run the demo."
        )
        raise FileNotFoundError(msg)
    checkpoint = None if args.retrain else _finished_demo(config, root)
    if checkpoint is not None:
        print(
            f"Reusing {checkpoint.resolve()}: an earlier demo pretrained it to the "
            "end after the scene was written (pass --retrain to pretrain again)."
        )
    else:
        # Imported once the config is found: it loads the tasks and LightningCLI.
        from ..lightning_cli import fit, quiet_lightning

        quiet_lightning()  # a newcomer reads Lightning's tips as problems
        checkpoint = fit(["--config", str(config), "--data.init_args.root", str(root)])
        if checkpoint is None:
            msg = f"{config} wrote no checkpoint; it needs a ModelCheckpoint callback."
            raise RuntimeError(msg)
        print(f"\nPretrained checkpoint: {checkpoint.resolve()}")
    if args.probe:
        # The parser names this function as the demo's handler: imported here.
        from .parser import build_parser

        # The probe command's own defaults, so the two never drift apart.
        probe = build_parser().parse_args(
            ["probe", "--checkpoint", str(checkpoint), "--root", str(root)]
        )
        probe.func(probe)


def _finished_demo(config: Path, root: Path) -> Path | None:
    """The checkpoint of an earlier demo, if it trained to the end on *root*.

    Args:
        config: the quickstart pretraining config (its ``last.ckpt`` path and
            epochs).
        root: the sample scene.

    Returns:
        The config's ``last.ckpt``, relative to the working directory; None
        if it is missing, unreadable, stopped before its last epoch, or older
        than a file of the scene (the scene was written again since).
    """
    import torch
    import yaml

    settings = yaml.safe_load(config.read_text())
    (saver,) = [
        callback["init_args"]
        for callback in settings["trainer"]["callbacks"]
        if callback["class_path"].endswith("ModelCheckpoint")
    ]
    last = Path(saver["dirpath"]) / "last.ckpt"
    if not last.is_file():
        return None
    written = last.stat().st_mtime
    if any(f.stat().st_mtime > written for f in root.rglob("*") if f.is_file()):
        return None
    try:
        checkpoint = torch.load(last, map_location="cpu", weights_only=False, mmap=True)
        epochs = checkpoint["loops"]["fit_loop"]["epoch_progress"]["total"]
    except (RuntimeError, OSError, EOFError, KeyError, TypeError):
        return None  # cut short or not Lightning's: pretrain again
    return last if epochs["processed"] >= settings["trainer"]["max_epochs"] else None


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
                f"--{name}-config or --config-dir (default: the repository's conf/)."
            )
            raise FileNotFoundError(msg)
    plan = ExperimentPlan(
        root=Path(args.root),
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
