"""The ADM evaluator's formulas (openai/guided-diffusion ``evaluations/evaluator.py``), written
out in NumPy/SciPy for the tests to compare with, step for step: its Fréchet distance
(``FIDStatistics.frechet_distance``: ``scipy.linalg.sqrtm`` of the covariance product, an eps
on the diagonals where that is not finite, the real part) and its Inception Score
(``Evaluator.compute_inception_score``: softmax, contiguous splits of ``split_size`` images,
the last one shorter, the mean of the splits' scores)."""

import warnings

import numpy as np
import scipy.linalg
import scipy.special


def adm_frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's notes on singular products and its deprecated disp
        root, _ = scipy.linalg.sqrtm(sigma1.dot(sigma2), disp=False)
        if not np.isfinite(root).all():
            offset = np.eye(sigma1.shape[0]) * eps
            root = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(root):
        assert np.allclose(np.diagonal(root).imag, 0, atol=1e-3), "ADM raises: imaginary component"
        root = root.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(root))


def adm_inception_score(logits: np.ndarray, split_size: int = 5000) -> float:
    """ADM's IS of unbiased logits (N, K): its softmax, then its loop over contiguous splits."""
    preds = scipy.special.softmax(np.asarray(logits, np.float64), axis=1)
    scores = []
    for start in range(0, len(preds), split_size):
        part = preds[start:start + split_size]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    return float(np.mean(scores))
