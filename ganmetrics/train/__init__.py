"""Train small DCGANs (minimax, non-saturating, WGAN, WGAN-GP), also class-conditional or as an
InfoGAN, and track their FID and IS (and a conditional run's per-class FID).

``loop.train(TrainConfig(...))`` runs or resumes a run; ``toydata`` renders a seeded image set,
labelled or not, to train on; ``data`` reads a training folder (and its class subfolders);
``codes`` holds the codes a generator takes besides noise; ``commands`` holds the ``train``,
``sample`` and ``toy-data`` CLI commands.
"""

from .codes import InfoCodes
from .loop import TrainConfig, train
from .losses import LOSSES, LossSpec
from .models import Discriminator, Generator, InfoHead
from .toydata import toy_images, write_toy_dataset

__all__ = ["LOSSES", "Discriminator", "Generator", "InfoCodes", "InfoHead", "LossSpec", "TrainConfig", "toy_images",
           "train", "write_toy_dataset"]
