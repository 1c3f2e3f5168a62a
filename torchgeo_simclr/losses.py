"""Binary irrigation losses and the distillation loss, with ignored targets."""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

from .constants import IGNORE_INDEX


def _full_precision(logits: Tensor) -> Tensor:
    """*logits* in float32 at least, as mixed precision leaves them in 16 bits.

    Under ``bf16-mixed`` the logits come out of the model in bfloat16, whose
    resolution (about 0.4% of a value) is as large as the small differences
    the losses are made of; float32 and float64 logits are kept as they are.
    """
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def binary_loss(
    logits: Tensor,
    targets: Tensor,
    kind: Literal["bce", "focal"] = "bce",
    pos_weight: float | None = None,
    focal_gamma: float = 2.0,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """Binary cross-entropy or focal loss over the labelled entries.

    Args:
        logits: ``[B]`` or ``[B, H, W]`` logits of irrigated.
        targets: same shape, 0 / 1, *ignore_index* where unknown.
        kind: ``bce`` (optionally class-weighted) or ``focal``.
        pos_weight: weight of irrigated entries relative to not-irrigated ones
            (e.g. negatives / positives); None weighs them alike.
        focal_gamma: focusing parameter of the focal loss.
        ignore_index: target value that contributes nothing.

    Returns:
        The mean loss over labelled entries (0 when none is labelled), in
        float32 at least (16-bit logits of mixed precision are upcast).
    """
    logits = _full_precision(logits)
    keep = targets != ignore_index
    if not keep.any():
        return logits.sum() * 0.0
    x, y = logits[keep], targets[keep].to(logits.dtype)
    if kind == "focal":
        alpha = -1.0
        if pos_weight is not None:
            alpha = pos_weight / (1.0 + pos_weight)
        focal: Tensor = sigmoid_focal_loss(
            x, y, alpha=alpha, gamma=focal_gamma, reduction="mean"
        )
        return focal
    weight = None if pos_weight is None else torch.tensor(pos_weight, device=x.device)
    return F.binary_cross_entropy_with_logits(x, y, pos_weight=weight)


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 1.0,
    valid: Tensor | None = None,
) -> Tensor:
    """KL divergence from the teacher's softened prediction to the student's.

    For a binary output the softened prediction of logit ``z`` is the
    Bernoulli distribution ``p = sigmoid(z / T)``, which is exactly the
    two-class softmax SimCLRv2 distils with. The loss is the mean over entries
    of ``KL(p_teacher || p_student)`` times ``T**2`` (so gradients keep their
    size as *T* changes, as in Hinton et al., 2015). It equals the
    cross-entropy against the teacher's soft targets minus the teacher's
    entropy, so it has the same gradients and is 0 when the student matches.

    Args:
        student_logits: ``[B]`` or ``[B, H, W]`` logits of irrigated.
        teacher_logits: the teacher's logits, same shape (no gradient needed).
        temperature: softening temperature ``T`` > 0.
        valid: optional boolean mask of the entries to average over, same
            shape (e.g. the pixels or patches with data).

    Returns:
        The scalar loss (0 when no entry is valid), in float32 at least
        (16-bit logits of mixed precision are upcast).
    """
    s = _full_precision(student_logits) / temperature
    t = _full_precision(teacher_logits.detach()) / temperature
    p = torch.sigmoid(t)
    # KL(p || q) = p (log p - log q) + (1 - p) (log(1 - p) - log(1 - q)),
    # written with logsigmoid for stability: log(1 - sigmoid(z)) = logsigmoid(-z).
    kl = p * (F.logsigmoid(t) - F.logsigmoid(s)) + (1 - p) * (
        F.logsigmoid(-t) - F.logsigmoid(-s)
    )
    if valid is not None:
        if not valid.any():
            return _full_precision(student_logits).sum() * 0.0
        kl = kl[valid]
    return kl.mean() * temperature**2
