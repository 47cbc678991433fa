"""The GAN objectives against their closed forms, the gradient penalty against its analytic value
for a linear critic, and WGAN weight clipping."""

import copy
import functools
import math

import pytest
import torch
import torch.nn as nn

from ganmetrics.train.loop import critic_update
from ganmetrics.train.losses import (LOSSES, gradient_penalty, information_loss, minimax_d_loss, minimax_g_loss,
                                     nonsaturating_g_loss, wgan_d_loss, wgan_g_loss)
from ganmetrics.train.models import Discriminator, InfoHead


pytestmark = pytest.mark.usefixtures("one_thread")


REAL = [2.0, -1.0, 0.0, 100.0, -100.0]
FAKE = [-3.0, 0.5, 0.0, -100.0, 100.0]


def log_sigmoid(x: float) -> float:
    """log(1 / (1 + exp(-x))), by hand: the naive form where it is exact, the limit beyond."""
    if x > 30:
        return -math.exp(-x)  # log(1 - e^-x) to first order; e^-100 ~ 4e-44
    if x < -30:
        return x  # log(e^x / (1 + e^x)) = x - log(1 + e^x), and log(1 + e^-100) ~ 4e-44
    return math.log(1 / (1 + math.exp(-x)))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def logits(values, dtype=torch.float64):
    return torch.tensor(values, dtype=dtype, requires_grad=True)



def test_minimax_discriminator_loss_is_minus_the_log_likelihood():
    real, fake = logits(REAL), logits(FAKE)
    loss = minimax_d_loss(real, fake)
    # D maximises log D(x) + log(1 - D(G(z))); 1 - sigmoid(l) = sigmoid(-l).
    expected = -sum(log_sigmoid(r) for r in REAL) / 5 - sum(log_sigmoid(-f) for f in FAKE) / 5
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx((0.126928011 + 1.313261687 + 0.693147181 + 0 + 100) / 5
                                     + (0.048587352 + 0.974076984 + 0.693147181 + 0 + 100) / 5, rel=1e-8)
    loss.backward()
    # d/dr of -log sigmoid(r) / N is -sigmoid(-r) / N; d/df of -log sigmoid(-f) / N is sigmoid(f) / N.
    assert real.grad.tolist() == pytest.approx([-sigmoid(-r) / 5 for r in REAL], rel=1e-12, abs=1e-300)
    assert fake.grad.tolist() == pytest.approx([sigmoid(f) / 5 for f in FAKE], rel=1e-12, abs=1e-300)


def test_minimax_generator_loss_is_log_one_minus_d():
    fake = logits(FAKE)
    loss = minimax_g_loss(fake)
    expected = sum(log_sigmoid(-f) for f in FAKE) / 5  # mean log(1 - D(G(z)))
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert loss.item() == pytest.approx(-(0.048587352 + 0.974076984 + 0.693147181 + 0 + 100) / 5, rel=1e-8)
    loss.backward()
    assert fake.grad.tolist() == pytest.approx([-sigmoid(f) / 5 for f in FAKE], rel=1e-12, abs=1e-300)
    # The saturation that gives the loss its reputation: a rejected sample (logit -100) gets no gradient.
    assert abs(fake.grad[3].item()) < 1e-40


def test_nonsaturating_generator_loss_is_minus_log_d():
    fake = logits(FAKE)
    loss = nonsaturating_g_loss(fake)
    expected = -sum(log_sigmoid(f) for f in FAKE) / 5
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert loss.item() == pytest.approx((3.048587352 + 0.474076984 + 0.693147181 + 100 + 0) / 5, rel=1e-8)
    loss.backward()
    assert fake.grad.tolist() == pytest.approx([-sigmoid(-f) / 5 for f in FAKE], rel=1e-12, abs=1e-300)
    # Where minimax saturates, the -log D trick still pushes with the full unit slope.
    assert fake.grad[3].item() == pytest.approx(-1 / 5)


def test_wgan_losses_are_differences_of_means():
    real, fake = logits(REAL), logits(FAKE)
    assert wgan_d_loss(real, fake).item() == pytest.approx(sum(FAKE) / 5 - sum(REAL) / 5, abs=1e-12)
    assert wgan_g_loss(fake).item() == pytest.approx(-sum(FAKE) / 5, abs=1e-12)
    (wgan_d_loss(real, fake) + wgan_g_loss(fake)).backward()
    assert real.grad.tolist() == [-0.2] * 5
    assert fake.grad.tolist() == pytest.approx([0.0] * 5, abs=1e-15)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_logits_give_finite_losses_and_gradients(dtype):
    extremes = [100.0, -100.0, 100.0, -100.0]
    for loss_fn, args in [(minimax_d_loss, 2), (minimax_g_loss, 1), (nonsaturating_g_loss, 1),
                          (wgan_d_loss, 2), (wgan_g_loss, 1)]:
        inputs = [logits(extremes, dtype) for _ in range(args)]
        loss = loss_fn(*inputs)
        loss.backward()
        assert torch.isfinite(loss), loss_fn.__name__
        assert all(torch.isfinite(x.grad).all() for x in inputs), loss_fn.__name__
    # Half the real logits at -100 cost 100 each: mean 50, plus the same from the fake side.
    assert minimax_d_loss(logits(extremes, dtype), logits(extremes, dtype)).item() == pytest.approx(100.0)


class LinearCritic(nn.Module):
    """f(x) = <w, x> + b over the flattened image: grad_x f = w everywhere."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(b, dtype=w.dtype))

    def forward(self, x):
        return x.flatten(1) @ self.w + self.b


@pytest.mark.parametrize("w_value, expected", [(0.5, 10 * (math.sqrt(3) - 1) ** 2), (1 / math.sqrt(12), 0.0),
                                               (0.0, 10.0)])
def test_gradient_penalty_of_a_linear_critic_is_lambda_times_norm_minus_one_squared(w_value, expected):
    torch.manual_seed(0)
    w = torch.full((12,), w_value, dtype=torch.float64)  # ||w|| = sqrt(12) * w_value
    critic = LinearCritic(w, b=0.7)
    real = torch.randn(6, 3, 2, 2, dtype=torch.float64)
    fake = torch.randn(6, 3, 2, 2, dtype=torch.float64)
    penalty = gradient_penalty(critic, real, fake, weight=10.0)
    assert penalty.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    if w_value:
        # The penalty trains the critic: d/dw of 10 (||w|| - 1)^2 is 20 (||w|| - 1) w / ||w||.
        penalty.backward()
        norm = math.sqrt(12) * w_value
        assert critic.w.grad.tolist() == pytest.approx([20 * (norm - 1) * w_value / norm] * 12, rel=1e-12, abs=1e-12)


def test_clipping_holds_after_every_critic_step():
    torch.manual_seed(0)
    spec = LOSSES["wgan"]
    critic = Discriminator(32, 3, ndf=8, norm=spec.critic_norm)
    optimizer = spec.make_optimizer(critic.parameters())
    assert max(p.abs().max().item() for p in critic.parameters()) > 0.01  # N(0, 0.02) init, BN weights ~1
    for _ in range(5):
        real = torch.rand(8, 3, 32, 32) * 2 - 1
        fake = torch.rand(8, 3, 32, 32) * 2 - 1
        critic_update(critic, optimizer, spec, real, fake)
        params = torch.cat([p.flatten() for p in critic.parameters()])
        assert params.abs().max().item() <= 0.01
        assert (params.abs() == 0.01).any()  # clipping is what holds them there


def test_loss_table_holds_the_published_settings():
    gan = dict(optimizer="adam", lr=2e-4, betas=(0.5, 0.999), n_critic=1, clip_value=None, gp_weight=None)
    wgan = dict(optimizer="rmsprop", lr=5e-5, betas=None, n_critic=5, clip_value=0.01, gp_weight=None)
    wgan_gp = dict(optimizer="adam", lr=1e-4, betas=(0.0, 0.9), n_critic=5, clip_value=None, gp_weight=10.0)
    for name, settings in [("minimax", gan), ("nonsaturating", gan), ("wgan", wgan), ("wgan-gp", wgan_gp)]:
        spec = LOSSES[name]
        assert {key: getattr(spec, key) for key in settings} == settings, name
    assert LOSSES["wgan-gp"].critic_norm == "layer"
    assert list(LOSSES) == ["minimax", "nonsaturating", "wgan", "wgan-gp"]

    params = [nn.Parameter(torch.zeros(2))]
    adam = LOSSES["wgan-gp"].make_optimizer(params)
    assert isinstance(adam, torch.optim.Adam)
    assert adam.param_groups[0]["lr"] == 1e-4 and adam.param_groups[0]["betas"] == (0.0, 0.9)
    rmsprop = LOSSES["wgan"].make_optimizer(params, lr=1e-3)
    assert isinstance(rmsprop, torch.optim.RMSprop) and rmsprop.param_groups[0]["lr"] == 1e-3


LOGITS = [[2.0, -1.0, 0.5], [0.0, 0.0, 0.0], [-3.0, 4.0, 1.0], [100.0, -100.0, 0.0]]
CATEGORY = [0, 2, 1, 1]
MEANS = [[0.5, -0.2], [0.0, 0.0], [1.5, 0.3], [-1.0, 0.9]]
CONTINUOUS = [[0.25, -1.0], [0.0, 1.0], [1.0, 0.3], [-1.0, -0.9]]


def test_information_loss_is_cross_entropy_plus_unit_gaussian_nll():
    q_logits, q_means = logits(LOGITS), logits(MEANS)
    category, continuous = torch.tensor(CATEGORY), torch.tensor(CONTINUOUS, dtype=torch.float64)
    loss = information_loss(q_logits, q_means, category, continuous)

    def cross_entropy(row, k):  # -log softmax, by hand, stable for the +-100 row
        top = max(row)
        return -(row[k] - top - math.log(sum(math.exp(v - top) for v in row)))

    def gaussian_nll(c, mu):  # -log N(c; mu, 1)
        return -math.log(math.exp(-(c - mu) ** 2 / 2) / math.sqrt(2 * math.pi))

    ce = sum(cross_entropy(row, k) for row, k in zip(LOGITS, CATEGORY)) / 4
    nll = sum(gaussian_nll(c, mu) for cs, mus in zip(CONTINUOUS, MEANS) for c, mu in zip(cs, mus)) / 4
    assert loss.item() == pytest.approx(1.0 * ce + 0.1 * nll, rel=1e-12)
    assert ce == pytest.approx((0.241311297 + 1.098612289 + 0.049455610 + 200.0) / 4, rel=1e-8)
    loss.backward()
    # d/dlogits of mean CE: (softmax - one-hot) / N; d/dmeans of 0.1 * mean NLL: 0.1 (mean - c) / N.
    softmax = torch.tensor(LOGITS, dtype=torch.float64).softmax(1)
    expected = (softmax - torch.eye(3, dtype=torch.float64)[CATEGORY]) / 4
    torch.testing.assert_close(q_logits.grad, expected, rtol=1e-12, atol=1e-15)
    expected = 0.1 * (torch.tensor(MEANS, dtype=torch.float64) - continuous) / 4
    torch.testing.assert_close(q_means.grad, expected, rtol=1e-12, atol=1e-15)
    assert information_loss(q_logits, q_means, category, continuous, 2.0, 0.0).item() == pytest.approx(2 * ce, rel=1e-12)


class LabelledLinearCritic(nn.Module):
    """f(x, c) = <W c, x> over the flattened image: grad_x f = W c, one direction per class."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x, condition):
        return (x.flatten(1) * (condition @ self.w)).sum(1)


def test_the_gradient_penalty_of_a_conditional_critic_keeps_each_sample_s_class():
    torch.manual_seed(0)
    w = torch.randn(3, 12, dtype=torch.float64)  # row k: the critic's gradient for class k
    critic = LabelledLinearCritic(w)
    condition = torch.eye(3, dtype=torch.float64)[[0, 1, 2, 2, 1, 0]]
    real = torch.randn(6, 3, 2, 2, dtype=torch.float64)
    fake = torch.randn(6, 3, 2, 2, dtype=torch.float64)
    penalty = gradient_penalty(functools.partial(critic, condition=condition), real, fake, weight=10.0)
    # Interpolates of sample i keep class i, so the gradient there is w[class i].
    norms = w.norm(dim=1)[[0, 1, 2, 2, 1, 0]]
    assert penalty.item() == pytest.approx(10 * ((norms - 1) ** 2).mean().item(), rel=1e-12)


def test_an_infogan_critic_update_adds_the_information_loss_and_trains_q():
    torch.manual_seed(0)
    spec = LOSSES["nonsaturating"]
    critic = Discriminator(32, 3, ndf=8, norm=spec.critic_norm)
    q_head = InfoHead(critic.trunk_width, categories=4, continuous=2)
    optimizer = spec.make_optimizer([*critic.parameters(), *q_head.parameters()])
    real, fake = torch.rand(8, 3, 32, 32) * 2 - 1, torch.rand(8, 3, 32, 32) * 2 - 1
    codes = (torch.randint(4, (8,)), torch.rand(8, 2) * 2 - 1)
    before_critic, before_q = copy.deepcopy(critic), copy.deepcopy(q_head)

    loss = critic_update(critic, optimizer, spec, real, fake, q_head=q_head, codes=codes)

    replay_real = before_critic(real)  # the replay, in the same order (real, then fake) through batch norm
    features = before_critic.trunk(fake)
    logits, means = before_q(features)
    expected = minimax_d_loss(replay_real, before_critic.head(features)) + information_loss(logits, means, *codes)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert not torch.equal(q_head.main[-1].weight, before_q.main[-1].weight)  # Q is in the critic's optimiser
