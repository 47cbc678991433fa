"""Image sources: folders, archives, arrays and generators, read as uint8 RGB images.

Sources with random access (folders, zip files, arrays) are read by index in worker processes;
``.tar``/``.tar.gz`` archives in one sequential pass, generators in one pass in the main
process. Memory holds a batch, never a whole source. One file per kind of source; ``open.py``
picks the kind from what the user passed.
"""

from .archives import TarSource, ZipSource
from .arrays import ArraySource, NpzMember, images_key
from .base import IMAGE_EXTENSIONS, ImageSource, decode_image, is_hidden, is_image_name
from ..lazy import lazy_attributes
from .files import FolderSource, class_folders
from .open import ARCHIVE_SUFFIXES, ARRAY_SUFFIXES, open_source

# Their modules import torch: loaded on first use, so that opening files needs no torch.
__getattr__ = lazy_attributes(__name__, {"GeneratorSource": ".generator", "VALUE_RANGES": ".pixels",
                                         "rgb_pixels": ".pixels", "to_uint8": ".pixels"})

__all__ = [
    "ARCHIVE_SUFFIXES", "ARRAY_SUFFIXES", "IMAGE_EXTENSIONS", "VALUE_RANGES", "ArraySource", "FolderSource",
    "GeneratorSource", "ImageSource", "NpzMember", "TarSource", "ZipSource", "class_folders", "decode_image",
    "images_key", "is_hidden", "is_image_name", "open_source", "rgb_pixels", "to_uint8",
]
