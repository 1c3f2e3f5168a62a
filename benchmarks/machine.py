"""What a benchmark ran on: CPU model and library versions, for the record."""

import platform

import kornia
import lightning
import torch
import torchgeo


def cpu_name() -> str:
    """Return the CPU model name from /proc/cpuinfo, or platform's guess."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    """One line: CPU, cores, torch threads and the versions that matter."""
    return (
        f"CPU: {cpu_name()} ({torch.get_num_threads()} torch threads), "
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"lightning {lightning.__version__}, torchgeo {torchgeo.__version__}, "
        f"kornia {kornia.__version__}"
    )
