"""DCGAN generator and discriminator: shapes, ranges, norm layers and initialisation."""

import pytest
import torch
import torch.nn as nn

from ganmetrics.errors import GanMetricsError
from ganmetrics.train.models import Discriminator, Generator, InfoHead


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_maps_noise_to_images_in_minus_one_one(image_size, channels):
    torch.manual_seed(0)
    generator = Generator(image_size, channels, nz=100, ngf=16)
    z = torch.randn(5, 100)
    images = generator(z)
    assert images.shape == (5, channels, image_size, image_size)
    assert images.dtype == torch.float32
    assert images.min() >= -1 and images.max() <= 1
    assert images.std() > 0.01  # not a constant image
    assert torch.equal(generator(z.view(5, 100, 1, 1)), images)  # (N, nz, 1, 1) is the same input


@pytest.mark.parametrize("image_size", [32, 64])
@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_discriminator_returns_one_raw_score_per_image(image_size, norm):
    torch.manual_seed(0)
    critic = Discriminator(image_size, 3, ndf=16, norm=norm)
    scores = critic(torch.rand(6, 3, image_size, image_size) * 2 - 1)
    assert scores.shape == (6,)
    assert scores.dtype == torch.float32
    assert not isinstance(critic.main[-1], (nn.Sigmoid, nn.Tanh))  # logits, not probabilities
    norms = {type(m) for m in critic.modules()} & {nn.BatchNorm2d, nn.GroupNorm}
    assert norms == {"batch": {nn.BatchNorm2d}, "layer": {nn.GroupNorm}, "none": set()}[norm]


def test_layer_norm_critic_scores_each_sample_on_its_own():
    # The gradient penalty treats samples one by one; batch norm would mix them in training mode.
    torch.manual_seed(0)
    batch = torch.rand(4, 1, 32, 32) * 2 - 1
    other = batch.clone()
    other[1:] = torch.rand(3, 1, 32, 32) * 2 - 1
    layer_critic = Discriminator(32, 1, ndf=8, norm="layer")
    torch.testing.assert_close(layer_critic(batch)[0], layer_critic(other)[0])
    batch_critic = Discriminator(32, 1, ndf=8, norm="batch")
    assert batch_critic(batch)[0] != batch_critic(other)[0]


def test_widths_follow_ngf_and_ndf():
    generator = Generator(64, 3, nz=100, ngf=16)
    widths = [m.out_channels for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert widths == [128, 64, 32, 16, 3]
    critic = Discriminator(32, 3, ndf=8)
    widths = [m.out_channels for m in critic.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [8, 16, 32, 1]


def test_dcgan_initialisation():
    torch.manual_seed(0)
    for net in (Generator(64, 3, ngf=64), Discriminator(64, 3, ndf=64)):
        convs = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
        assert convs.mean().item() == pytest.approx(0, abs=1e-3)
        assert convs.std().item() == pytest.approx(0.02, rel=0.01)
        norm_weights = torch.cat([m.weight for m in net.modules() if isinstance(m, nn.BatchNorm2d)])
        assert norm_weights.mean().item() == pytest.approx(1, abs=0.005)
        assert norm_weights.std().item() == pytest.approx(0.02, rel=0.1)
        assert all(m.bias.abs().max() == 0 for m in net.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("image_size", [16, 48, 128])
def test_other_image_sizes_are_refused(image_size):
    with pytest.raises(GanMetricsError, match="use 32 or 64"):
        Generator(image_size)
    with pytest.raises(GanMetricsError, match="use 32 or 64"):
        Discriminator(image_size)


def test_a_code_is_concatenated_to_the_noise():
    torch.manual_seed(0)
    generator = Generator(32, 3, nz=100, ngf=8, code_dims=4).eval()
    first = generator.main[0]
    assert first.in_channels == 104
    z, code = torch.randn(6, 100), torch.eye(4)[[0, 1, 2, 3, 0, 1]]
    images = generator(z, code)
    assert images.shape == (6, 3, 32, 32)
    # The first layer sees [z, code]: the same layer applied to the concatenation by hand.
    expected = generator.main[1:](nn.functional.conv_transpose2d(torch.cat([z, code], 1)[:, :, None, None], first.weight))
    torch.testing.assert_close(images, expected)
    assert not torch.allclose(generator(z, code.roll(1, dims=1)), images)  # the code changes the images


def test_a_conditional_discriminator_sees_the_one_hot_as_constant_planes():
    torch.manual_seed(0)
    critic = Discriminator(32, 3, ndf=8, norm="layer", classes=3)
    assert critic.main[0].in_channels == 6
    x, condition = torch.rand(4, 3, 32, 32) * 2 - 1, torch.eye(3)[[0, 1, 2, 1]]
    planes = condition[:, :, None, None].expand(4, 3, 32, 32)
    torch.testing.assert_close(critic(x, condition), critic.main(torch.cat([x, planes], 1)).flatten())
    torch.testing.assert_close(critic.head(critic.trunk(x, condition)), critic(x, condition))
    assert critic.trunk(x, condition).shape == (4, critic.trunk_width, 4, 4) and critic.trunk_width == 32
    assert not torch.allclose(critic(x, condition.roll(1, dims=1)), critic(x, condition))


def test_info_head_splits_categorical_logits_from_continuous_means():
    torch.manual_seed(0)
    head = InfoHead(trunk_width=32, categories=10, continuous=2)
    logits, means = head(torch.randn(5, 32, 4, 4))
    assert logits.shape == (5, 10) and means.shape == (5, 2)
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in head.modules())  # samples stay independent
