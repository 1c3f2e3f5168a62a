"""The torch device a ``--device`` value names, checked before any work."""

from collections.abc import Callable

import torch

#: Whether each device type can run here.
_AVAILABLE: dict[str, Callable[[], bool]] = {
    "cpu": lambda: True,
    "cuda": torch.cuda.is_available,
    "mps": torch.backends.mps.is_available,
}


def resolve_device(device: str) -> torch.device:
    """The torch device of a ``--device`` value.

    Args:
        device: ``auto`` (CUDA when available, else Apple's MPS, else CPU),
            ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Returns:
        The device.

    Raises:
        ValueError: if *device* names no device type, or one this machine
            lacks.
    """
    if device == "auto":
        found = next(kind for kind in ("cuda", "mps", "cpu") if _AVAILABLE[kind]())
        return torch.device(found)
    try:
        resolved = torch.device(device)
    except RuntimeError:
        resolved = None
    if resolved is None or resolved.type not in _AVAILABLE:
        msg = (
            f"--device {device!r} is not a device this tool runs on; pass auto, "
            "cpu, cuda, cuda:N or mps."
        )
        raise ValueError(msg)
    if not _AVAILABLE[resolved.type]():
        msg = (
            f"--device {device!r} asks for {resolved.type.upper()}, which this "
            "machine does not have; pass --device cpu, or auto to use a GPU "
            "where there is one."
        )
        raise ValueError(msg)
    return resolved
