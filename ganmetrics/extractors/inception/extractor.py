"""The FID Inception-v3 as an encoder: the taps "64", "192", "768", "2048" (pool3),
"logits_unbiased" and "spatial" (sFID's) of one forward pass, with the named resize of
``preprocess.py``. Its options: ``resize`` (tf, pytorch or clean: it changes the features) and
``dims`` (which tap FID uses: it only selects a feature).

On the CPU the network runs in oneDNN's blocked layout (``onednn.py``), ``CPU_CHUNK`` images at
a time with its stem two images at a time: the same numbers, faster, and in less memory.
Resizing (``tf``, ``pytorch``) runs on the compute device, per chunk on the CPU; ``clean`` runs
in the decoding workers (``host_transform``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..base import FeatureExtractor, encoder_option
from .spec import FEATURE_DIMS, FEATURES, NAME, RESIZE_MODES
from .weights import IGNORED_SUFFIXES, WEIGHTS_FILE, random_state_dict

if TYPE_CHECKING:
    import torch

CPU_STEM_BATCH = 2
"""Images the network's stem runs at once on the CPU (see ``FIDInceptionV3.stem_batch``)."""

CPU_CHUNK = 10
"""Images resized and run through the network at once on the CPU. Larger chunks are hardly
faster there, while the activations in flight grow with them (BENCHMARKS.md); each image's
features are the same whatever the chunk (``tests/extractors/test_onednn.py`` pins it bit for bit)."""


@dataclass(frozen=True)
class InceptionOptions:
    resize: str = encoder_option("tf", "tf (as torch-fidelity), pytorch (as pytorch-fid) or clean (as clean-fid).",
                                 choices=RESIZE_MODES)
    dims: int = encoder_option(2048, "FID feature layer.", choices=FEATURE_DIMS, selects_feature=True)


class InceptionExtractor(FeatureExtractor):
    """The FID Inception-v3 (``network.FIDInceptionV3``) with its standard weights file."""

    name = "inception"
    model = NAME
    features = FEATURES
    Options = InceptionOptions
    weights_file = WEIGHTS_FILE
    ignored_key_suffixes = IGNORED_SUFFIXES
    roles = {"embedding": "2048", "logits": "logits_unbiased", "spatial": "spatial"}
    cpu_chunk = CPU_CHUNK

    @classmethod
    def architecture(cls):
        from .network import FIDInceptionV3

        return FIDInceptionV3()

    @classmethod
    def random_state_dict(cls, seed: int) -> dict:
        return random_state_dict(seed)

    def feature_of_role(self, role: str) -> str | None:
        """As the base class; FID's ``frechet`` role is the ``dims`` tap."""
        return str(self.options.dims) if role == "frechet" else super().feature_of_role(role)

    def option_hint(self, feature: str) -> str | None:
        return f"--dims {feature}" if feature in map(str, FEATURE_DIMS) else None

    @property
    def resize(self) -> str:
        return self.options.resize

    def adapt_network(self, network) -> None:
        """On the CPU the blocked layout where this machine computes it bit for bit
        (``onednn.use_blocked_layout``), and the stem ``CPU_STEM_BATCH`` images at a time."""
        if self.device.type == "cpu":
            from .onednn import use_blocked_layout

            use_blocked_layout(network)  # the same numbers with fewer reorders (see onednn.py)
            network.stem_batch = CPU_STEM_BATCH  # the same numbers, from the caches

    @property
    def host_transform(self):
        """What the decoding workers apply to each uint8 (H, W, 3) image: for ``clean``
        clean-fid's resize (float32 (299, 299, 3) in [0, 255]), else nothing."""
        if self.resize == "clean":
            from .preprocess import clean_resize

            return clean_resize
        return super().host_transform

    def forward(self, network, pixels: torch.Tensor, wanted: Collection[str]) -> dict[str, torch.Tensor]:
        """``pixels``: uint8 (N, H, W, 3), or float32 (N, 299, 299, 3) after ``clean``."""
        from .preprocess import to_network_input

        # Contiguous NCHW as the reference tools feed it: a channels-last batch makes the
        # convolutions pick other kernels, whose rounding moves features by ~1e-5.
        return network(to_network_input(pixels.permute(0, 3, 1, 2).contiguous(), self.resize), wanted)

    def plan(self, pixels: torch.Tensor, wanted: Collection[str],
             sizes: Sequence[int] | None = None) -> tuple[list[Callable[[], dict]], Callable]:
        """One part per chunk of ``cpu_chunk`` images on the CPU (or of each of ``sizes``
        images; one part in all elsewhere), each returning its chunk's features; ``join`` takes
        their results in order to what ``self(pixels, wanted)`` returns. Each image's features
        are the same bits in any chunk."""
        import torch

        if self.device.type != "cpu":
            chunks = (pixels,)
        elif sizes:
            chunks = pixels.split(list(sizes))
        else:
            chunks = pixels.split(self.cpu_chunk)
        if len(chunks) == 1:
            return super().plan(pixels, wanted, [len(pixels)])  # one part, whatever ``cpu_chunk``
        network = self.network
        # The logits are one matrix product, whose rounding depends on its number of rows:
        # computed once for all the chunks in ``join``, as the network computes them for one batch.
        per_chunk = set(wanted) - {"logits_unbiased"} | ({"2048"} if "logits_unbiased" in wanted else set())

        def part(chunk: torch.Tensor) -> Callable[[], dict]:
            def run() -> dict[str, torch.Tensor]:
                with torch.inference_mode():
                    return self.forward(network, chunk, per_chunk)
            return run

        @torch.inference_mode()
        def join(outs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
            out = {feature: torch.cat([o[feature] for o in outs]) for feature in per_chunk}
            if "logits_unbiased" in wanted:
                out["logits_unbiased"] = network.logits(out["2048"])
            return {feature: out[feature] for feature in wanted}

        return [part(chunk) for chunk in chunks], join

