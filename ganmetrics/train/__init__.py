"""Train small DCGANs (minimax, non-saturating, WGAN, WGAN-GP) and track their FID and IS.

``loop.train(TrainConfig(...))`` runs or resumes a run; ``toydata`` renders a seeded image set
to train on; ``commands`` holds the ``train``, ``sample`` and ``toy-data`` CLI commands.
"""

from .loop import TrainConfig, train
from .losses import LOSSES, LossSpec
from .models import Discriminator, Generator
from .toydata import toy_images, write_toy_dataset

__all__ = ["LOSSES", "Discriminator", "Generator", "LossSpec", "TrainConfig", "toy_images", "train", "write_toy_dataset"]
