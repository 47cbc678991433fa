"""What the DINOv2 encoder offers, by name, without torch: the model, its named feature and its
resize modes, read by the command line and the registry before (or without) building a network."""

NAME = "dinov2-vitl14-lvd142m"
"""The model the numbers come from: facebookresearch/dinov2's ``dinov2_vitl14`` (LVD-142M)."""

FEATURES = {"cls": 1024}
"""The class token after the final norm: what the hub model returns, and EDM2 and dgm-eval use."""

RESIZE_MODES = ("torch", "pil")
"""The named resizes to the network's 224 x 224 input (``preprocess.py``)."""
