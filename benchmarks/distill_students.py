"""Distillation quality and speed of other students, against the experiment's teachers.

For every fine-tuned SimCLRv2 teacher of a finished ``torchgeo-simclr experiment``
(its ``results.csv``), distils each student named with ``conf/distill_quickstart.yaml``
(same seed, fraction, epochs and learning rate as the experiment's own student),
scores it on the test blocks, and times student and teacher side by side on one
random batch in a separate fresh process, as the experiment does. Prints per run
and per fraction: student F1, teacher F1, the difference and the speed-up.

    python benchmarks/distill_students.py --results runs/experiment/results.csv \
        --root data/sample --students lcnet_100 mobilenetv3_small_075
"""

import argparse
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path

from machine import describe

from torchgeo_simclr.experiment import read_results, run_stage
from torchgeo_simclr.lightning_cli import quiet_lightning
from torchgeo_simclr.throughput import FreshProcessTimer

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "distill_quickstart.yaml"


def main() -> None:
    """Distil every student from every teacher and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--root", type=Path, default=Path("data/sample"))
    parser.add_argument("--students", nargs="+", required=True)
    args = parser.parse_args()

    quiet_lightning()
    print(describe())
    teachers = [row for row in read_results(args.results) if row["method"] == "simclr"]
    # (student, fraction) -> [(student F1, teacher F1, speed-up)]
    scores: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp, FreshProcessTimer() as timer:
        for student in args.students:
            for teacher in teachers:
                fraction, seed = teacher["fraction"], teacher["seed"]
                outcome = run_stage(
                    CONFIG,
                    Path(tmp) / f"{student}_f{fraction}_s{seed}",
                    [
                        "--data.init_args.root",
                        str(args.root),
                        "--seed_everything",
                        seed,
                        "--data.init_args.label_fraction",
                        fraction,
                        "--data.init_args.label_seed",
                        seed,
                        "--model.init_args.teacher",
                        teacher["checkpoint"],
                        "--model.init_args.model",
                        student,
                    ],
                )
                speed = timer(
                    {"student": outcome.checkpoint, "teacher": teacher["checkpoint"]},
                    outcome.task.data_metadata.patch_size,
                )
                f1, teacher_f1 = outcome.metrics["test_f1"], float(teacher["f1"])
                speedup = speed["student"] / speed["teacher"]
                scores[student, fraction].append((f1, teacher_f1, speedup))
                print(
                    f"{student} fraction={fraction} seed={seed}: F1 {f1:.4f}, "
                    f"teacher {teacher_f1:.4f} ({f1 - teacher_f1:+.4f}), "
                    f"{speedup:.2f}x the teacher's img/s",
                    flush=True,
                )
    print("\n| student | fraction | F1 | teacher F1 | difference | speed-up (range) |")
    print("|---|---|---|---|---|---|")
    for (student, fraction), runs in scores.items():
        f1, teacher_f1, speedup = (
            statistics.mean(run[i] for run in runs) for i in range(3)
        )
        low, high = min(run[2] for run in runs), max(run[2] for run in runs)
        print(
            f"| {student} | {fraction} | {f1:.3f} | {teacher_f1:.3f} | "
            f"{f1 - teacher_f1:+.3f} | {speedup:.2f}x ({low:.2f}-{high:.2f}) |"
        )


if __name__ == "__main__":
    main()
