"""InfoGAN's codes: the spec, the prior, the code vector and the traversal sheets' codes."""

import pytest
import torch

from ganmetrics.errors import GanMetricsError
from ganmetrics.train.codes import TRAVERSAL_VALUES, InfoCodes, one_hot


@pytest.mark.parametrize("spec, codes", [("10,2", (10, 2)), ("2,0", (2, 0)), (" 4 , 1 ", (4, 1))])
def test_a_spec_names_the_categories_and_the_continuous_codes(spec, codes):
    info = InfoCodes.parse(spec)
    assert (info.categories, info.continuous) == codes and info.dims == sum(codes)


@pytest.mark.parametrize("spec, message", [("10", "is not CATEGORIES,CONTINUOUS"), ("10,2,1", "is not"), ("a,b", "is not"),
                                           ("10,-1", "is not"), ("1.5,2", "is not"), ("", "is not"),
                                           ("1,2", "at least 2 categories"), ("0,2", "at least 2 categories")])
def test_malformed_specs_are_refused_in_one_line(spec, message):
    with pytest.raises(GanMetricsError, match=message) as error:
        InfoCodes.parse(spec)
    assert "\n" not in str(error.value)


def test_codes_are_drawn_from_the_paper_s_prior():
    info = InfoCodes(10, 2)
    category, continuous = info.draw(20000, generator=torch.Generator().manual_seed(0))
    assert category.dtype == torch.int64 and continuous.dtype == torch.float32
    counts = torch.bincount(category, minlength=10).double() / 20000
    assert (counts - 0.1).abs().max() < 5 * (0.1 * 0.9 / 20000) ** 0.5  # uniform over the categories
    assert continuous.min() >= -1 and continuous.max() <= 1
    # U[-1, 1]: mean 0, variance 1/3, and as many values in each quarter of the interval.
    assert continuous.mean().abs() < 0.02 and (continuous.var() - 1 / 3).abs() < 0.01
    quarters = torch.bincount(((continuous + 1) * 2).long().clamp(max=3).flatten(), minlength=4).double() / 40000
    assert (quarters - 0.25).abs().max() < 0.01
    vector = info.vector(category, continuous)
    assert vector.shape == (20000, 12)
    assert torch.equal(vector[:, :10], one_hot(category, 10)) and torch.equal(vector[:, 10:], continuous)


def test_traversal_codes_vary_one_code_by_row():
    info = InfoCodes(3, 2)
    sheets = info.traversals(columns=4)
    assert list(sheets) == ["categorical", "continuous0", "continuous1"]
    categorical = sheets["categorical"].view(3, 4, 5)  # rows, columns, code
    assert torch.equal(categorical[:, :, :3], torch.eye(3)[:, None, :].expand(3, 4, 3))  # row r: category r
    assert torch.equal(categorical[:, :, 3:], torch.zeros(3, 4, 2))
    values = torch.linspace(-1, 1, TRAVERSAL_VALUES)
    for j in range(2):
        sheet = sheets[f"continuous{j}"].view(TRAVERSAL_VALUES, 4, 5)
        assert torch.equal(sheet[:, :, 3 + j], values[:, None].expand(TRAVERSAL_VALUES, 4))  # row r: value r
        assert torch.equal(sheet[:, :, 4 - j], torch.zeros(TRAVERSAL_VALUES, 4))  # the other code stays at 0
        assert torch.equal(sheet[:, :, :3].argmax(-1), (torch.arange(4) % 3).expand(TRAVERSAL_VALUES, 4))
