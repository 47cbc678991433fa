"""Image sources: folders, archives, arrays and generators, read as uint8 RGB images.

Sources with random access (folders, zip files, arrays) are read by index in worker processes;
``.tar``/``.tar.gz`` archives in one sequential pass, generators in one pass in the main
process. Memory holds a batch, never a whole source. One file per kind of source; ``open.py``
picks the kind from what the user passed.
"""

from .archives import TarSource, ZipSource
from .arrays import ArraySource, NpzMember, images_key
from .base import IMAGE_EXTENSIONS, ImageSource, decode_image, is_hidden, is_image_name
from .files import FolderSource
from .generator import GeneratorSource
from .open import ARCHIVE_SUFFIXES, ARRAY_SUFFIXES, open_source
from .pixels import VALUE_RANGES, rgb_pixels, to_uint8

__all__ = [
    "ARCHIVE_SUFFIXES", "ARRAY_SUFFIXES", "IMAGE_EXTENSIONS", "VALUE_RANGES", "ArraySource", "FolderSource",
    "GeneratorSource", "ImageSource", "NpzMember", "TarSource", "ZipSource", "decode_image", "images_key",
    "is_hidden", "is_image_name", "open_source", "rgb_pixels", "to_uint8",
]
