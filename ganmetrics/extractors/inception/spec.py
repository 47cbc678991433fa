"""What the FID Inception extractor offers, by name, without torch: its name, its named features
and their widths, and its resize modes. The command line and the engine read these before (or
without) building a network, so that ``ganmetrics --version`` and FID between two statistics
files start without importing torch."""

NAME = "inception-v3-2015-12-05"

FEATURE_DIMS = (64, 192, 768, 2048)
"""The FID taps (``--dims``): 64 after the first max pool, 192 after the second, 768 before the
auxiliary classifier (after Mixed_6e), 2048 after the final average pool (pool3)."""

NUM_CLASSES = 1008

SPATIAL_CHANNELS = 7
SPATIAL_SIZE = 17
"""sFID's features: the first ``SPATIAL_CHANNELS`` channels of ``Mixed_6d.branch1x1`` (the TF
graph's ``mixed_6/conv``), whose maps are ``SPATIAL_SIZE`` x ``SPATIAL_SIZE`` at the 299 input."""

FEATURES = {**{str(dims): dims for dims in FEATURE_DIMS}, "logits_unbiased": NUM_CLASSES,
            "spatial": SPATIAL_SIZE * SPATIAL_SIZE * SPATIAL_CHANNELS}
"""The named features of one forward pass and their widths: the spatially averaged activations
of each tap; ``logits_unbiased``, pool3 @ fc.weight.T without the fc bias (the IS logits); and
``spatial`` (2023, sFID's, as the ADM evaluator): the ``Mixed_6d.branch1x1`` output after batch
norm and ReLU, channels 0-6, flattened channels last: index (h * 17 + w) * 7 + c."""

RESIZE_MODES = ("tf", "pytorch", "clean")
"""The named resizes to the network's 299 x 299 input (``preprocess.py``)."""
