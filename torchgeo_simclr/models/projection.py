"""The SimCLRv2 projection head."""

import torch
from torch import Tensor, nn


class ProjectionHead(nn.Module):
    """SimCLRv2 projection head: a deep MLP with batch norm after every layer.

    Each of the first ``num_layers - 1`` blocks is ``Linear -> BatchNorm -> ReLU``;
    the last block is ``Linear -> BatchNorm`` with no ReLU, as in SimCLRv2
    (Chen et al., 2020, "Big Self-Supervised Models are Strong Semi-Supervised
    Learners"). One difference from the authors' code (google-research/simclr,
    ``tf2/model.py``): there the last BatchNorm learns a scale per output
    dimension (but no shift); here it learns neither, so the cosine
    similarity of the loss weighs every dimension alike. Fine-tuning keeps the
    backbone plus the first blocks of this head (SimCLRv2 fine-tunes from the
    first projection layer), so the blocks are kept separate in :attr:`blocks`.
    """

    #: The head's blocks, applied in order.
    blocks: nn.ModuleList

    def __init__(
        self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int = 3
    ) -> None:
        """Initialise a new ProjectionHead.

        Args:
            input_dim: size of the backbone's pooled features.
            hidden_dim: width of the hidden layers.
            output_dim: size of the projection the contrastive loss sees.
            num_layers: number of linear layers (SimCLRv2 uses 3).

        Raises:
            ValueError: if *num_layers* < 1.
        """
        super().__init__()
        if num_layers < 1:
            msg = f"ProjectionHead needs num_layers >= 1, got {num_layers}."
            raise ValueError(msg)
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        blocks: list[nn.Module] = []
        for i in range(num_layers):
            last = i == num_layers - 1
            layers: list[nn.Module] = [
                nn.Linear(dims[i], dims[i + 1], bias=False),
                nn.BatchNorm1d(dims[i + 1], affine=not last),
            ]
            if not last:
                layers.append(nn.ReLU(inplace=True))
            blocks.append(nn.Sequential(*layers))
        #: The head's ``num_layers`` blocks, applied in order.
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor, layers: int | None = None) -> Tensor:
        """Project backbone features.

        Args:
            x: pooled features ``[B, input_dim]``.
            layers: apply only the first *layers* blocks (default: all).

        Returns:
            ``[B, output_dim]``, or the output of block *layers* when given.
        """
        for block in self.blocks[: len(self.blocks) if layers is None else layers]:
            x = block(x)
        return torch.as_tensor(x)
