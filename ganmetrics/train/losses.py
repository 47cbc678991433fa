"""GAN objectives on raw discriminator outputs, and the optimiser settings each was published with.

Every loss is written as a quantity to *minimise*. With D = sigmoid(l) for a logit l,
log D = -softplus(-l) and log(1 - D) = -softplus(l); softplus is evaluated in the stable form
max(l, 0) + log(1 + exp(-|l|)), so logits of +-100 give finite losses and gradients, where
log(sigmoid(l)) would give -inf.
"""

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F


def minimax_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """D maximises E[log D(x)] + E[log(1 - D(G(z)))], i.e. minimises
    mean(softplus(-real)) + mean(softplus(fake)). ``real``, ``fake``: logits (N,)."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def minimax_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """G minimises E[log(1 - D(G(z)))] = -mean(softplus(fake)). Saturates (vanishing gradient)
    while D confidently rejects the samples."""
    return -F.softplus(fake).mean()


def nonsaturating_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """G maximises E[log D(G(z))] (the -log D trick), i.e. minimises mean(softplus(-fake))."""
    return F.softplus(-fake).mean()


def wgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The critic f maximises E[f(x)] - E[f(G(z))], i.e. minimises mean(fake) - mean(real)."""
    return fake.mean() - real.mean()


def wgan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """G maximises E[f(G(z))], i.e. minimises -mean(fake)."""
    return -fake.mean()


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     weight: float = 10.0) -> torch.Tensor:
    """weight * E[(||grad_x f(x_hat)||_2 - 1)^2] on x_hat = eps * x + (1 - eps) * G(z), with one
    eps ~ U[0, 1] per sample (Gulrajani et al., 2017). ``real``, ``fake``: (N, C, H, W), ``fake``
    detached from the generator; sample i of both has the same class where the critic is
    conditional (its one-hots bound into ``critic``), so x_hat keeps it. Differentiable with
    respect to the critic's parameters."""
    eps = torch.rand(real.size(0), 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return weight * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


# Chen et al., 2016: "for discrete latent codes, lambda = 1 is sufficient"; continuous codes take
# a smaller weight, which keeps their term on the GAN losses' scale.
CATEGORICAL_WEIGHT = 1.0
CONTINUOUS_WEIGHT = 0.1


def information_loss(logits: torch.Tensor, means: torch.Tensor, category: torch.Tensor, continuous: torch.Tensor,
                     categorical_weight: float = CATEGORICAL_WEIGHT,
                     continuous_weight: float = CONTINUOUS_WEIGHT) -> torch.Tensor:
    """InfoGAN's lambda * L_I (Chen et al., 2016), to minimise: the negative log-likelihood of
    the codes the generator was given under Q's posterior, per sample, averaged over the batch.

    ``logits``: Q's float (N, K) for the categorical code ``category``, int64 (N,): its
    cross-entropy -log softmax(logits)[category], weighted ``categorical_weight``. ``means``:
    Q's float (N, C) for the continuous codes ``continuous``, float (N, C), each a Gaussian of
    unit variance: sum_j 0.5 * ((c_j - mean_j)^2 + log(2 pi)), weighted ``continuous_weight``.
    """
    gaussian_nll = 0.5 * ((continuous - means) ** 2 + math.log(2 * math.pi)).sum(dim=1).mean()
    return categorical_weight * F.cross_entropy(logits, category) + continuous_weight * gaussian_nll


@torch.no_grad()
def clip_weights(critic: nn.Module, clip_value: float) -> None:
    """Clamp every parameter of the critic to [-clip_value, clip_value] (WGAN's crude Lipschitz bound)."""
    for param in critic.parameters():
        param.clamp_(-clip_value, clip_value)


@dataclass(frozen=True)
class LossSpec:
    """One objective and its published training settings, for both networks.

    ``d_loss(real_logits, fake_logits)`` and ``g_loss(fake_logits)`` return scalars to minimise;
    ``n_critic``: discriminator steps per generator step; ``clip_value``: weight clipping after
    each critic step (None: off); ``gp_weight``: gradient-penalty lambda (None: off);
    ``critic_norm``: the discriminator's norm layer (see ``models.Discriminator``).
    """

    name: str
    d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g_loss: Callable[[torch.Tensor], torch.Tensor]
    optimizer: str  # "adam" or "rmsprop"
    lr: float
    betas: tuple[float, float] | None
    n_critic: int
    clip_value: float | None
    gp_weight: float | None
    critic_norm: str

    def make_optimizer(self, params: Iterable[torch.nn.Parameter], lr: float | None = None) -> torch.optim.Optimizer:
        """This loss's optimiser over ``params``; ``lr`` overrides the published learning rate."""
        lr = self.lr if lr is None else lr
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, betas=self.betas)
        return torch.optim.RMSprop(params, lr=lr)


_GAN = dict(optimizer="adam", lr=2e-4, betas=(0.5, 0.999), n_critic=1, clip_value=None, gp_weight=None,
            critic_norm="batch")

LOSSES: dict[str, LossSpec] = {
    spec.name: spec
    for spec in (
        LossSpec("minimax", minimax_d_loss, minimax_g_loss, **_GAN),
        LossSpec("nonsaturating", minimax_d_loss, nonsaturating_g_loss, **_GAN),
        # Arjovsky et al., 2017: RMSProp, clipping, and the DCGAN critic with batch norm.
        LossSpec("wgan", wgan_d_loss, wgan_g_loss, optimizer="rmsprop", lr=5e-5, betas=None,
                 n_critic=5, clip_value=0.01, gp_weight=None, critic_norm="batch"),
        # Gulrajani et al., 2017: batch norm would couple the samples the penalty treats one by one.
        LossSpec("wgan-gp", wgan_d_loss, wgan_g_loss, optimizer="adam", lr=1e-4, betas=(0.0, 0.9),
                 n_critic=5, clip_value=None, gp_weight=10.0, critic_norm="layer"),
    )
}
