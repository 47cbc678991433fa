"""The codes concatenated to the generator's noise: a conditional GAN's class one-hots and
InfoGAN's latent codes (Chen et al., 2016).

InfoGAN's codes are drawn as in the paper: one categorical code, uniform over its categories
(one-hot), and continuous codes, each uniform in [-1, 1]. Its code vector is the one-hot
followed by the continuous values.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import GanMetricsError

TRAVERSAL_VALUES = 9  # rows of a continuous code's traversal sheet, -1 to 1


def one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """int64 (N,) class indices -> float32 (N, classes) one-hots, on the labels' device."""
    return F.one_hot(labels, classes).float()


def code_dims(classes: list[str], info: "InfoCodes | None") -> int:
    """Width of the code a generator takes: a conditional run's one-hot (one a class), an
    InfoGAN run's codes, or 0."""
    return len(classes) or (info.dims if info else 0)


@dataclass(frozen=True)
class InfoCodes:
    """InfoGAN's codes: one categorical code of ``categories`` (at least 2) and ``continuous``
    continuous codes (at least 0)."""

    categories: int
    continuous: int

    @classmethod
    def parse(cls, spec: str) -> "InfoCodes":
        """``"CATEGORIES,CONTINUOUS"`` (e.g. ``"10,2"``), or a ``GanMetricsError`` saying what is wrong."""
        parts = spec.split(",")
        if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
            raise GanMetricsError(f"--infogan {spec!r} is not CATEGORIES,CONTINUOUS; pass two counts, e.g. 10,2")
        categories, continuous = (int(part) for part in parts)
        if categories < 2:
            raise GanMetricsError(f"--infogan {spec!r}: the categorical code needs at least 2 categories, e.g. 10,2")
        return cls(categories, continuous)

    @property
    def dims(self) -> int:
        """Width of the code vector: the categorical one-hot, then the continuous codes."""
        return self.categories + self.continuous

    def draw(self, n: int, generator: torch.Generator | None = None,
             device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` codes from the prior: (category int64 (n,), continuous float32 (n, continuous)),
        from ``generator`` (None: torch's global one), on ``device``."""
        category = torch.randint(self.categories, (n,), generator=generator, device=device)
        continuous = torch.rand(n, self.continuous, generator=generator, device=device) * 2 - 1
        return category, continuous

    def vector(self, category: torch.Tensor, continuous: torch.Tensor) -> torch.Tensor:
        """The generator's code float32 (N, dims): the one-hot of ``category`` and ``continuous``."""
        return torch.cat([one_hot(category, self.categories), continuous], dim=1)

    def traversals(self, columns: int) -> dict[str, torch.Tensor]:
        """{name: code vectors float32 (rows * columns, dims)} of one sheet per code, row-major:
        "categorical", each category a row; "continuous0", ... each value from -1 to 1
        (``TRAVERSAL_VALUES``) a row, the other continuous codes 0 and column j in category
        j % categories. Paired with the same ``columns`` noise vectors in every row."""
        category = torch.arange(self.categories).repeat_interleave(columns)
        sheets = {"categorical": self.vector(category, torch.zeros(len(category), self.continuous))}
        values = torch.linspace(-1, 1, TRAVERSAL_VALUES).repeat_interleave(columns)
        category = torch.arange(columns).repeat(TRAVERSAL_VALUES) % self.categories
        for j in range(self.continuous):
            continuous = torch.zeros(len(values), self.continuous)
            continuous[:, j] = values
            sheets[f"continuous{j}"] = self.vector(category, continuous)
        return sheets
