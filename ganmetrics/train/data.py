"""The training images of a folder, and for a conditional run their classes.

A conditional run reads the ImageFolder layout: one subfolder of images per class, the classes
indexed in the sorted order of the subfolders' names.
"""

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import GanMetricsError
from ..sources import class_folders

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GRAYSCALE_MODES = ("1", "L", "LA")


def image_paths(folder: Path, recursive: bool = True) -> list[Path]:
    """Every PNG/JPG in ``folder`` (and its subfolders when ``recursive``), sorted by path."""
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES)


def _existing(data_dir: str | os.PathLike) -> Path:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise GanMetricsError(f"data folder {data_dir} does not exist; pass a folder of PNG/JPG images")
    return data_dir


def decode_images(paths: list[Path], image_size: int) -> torch.Tensor:
    """The images at ``paths``, centre-cropped to a square and resized (PIL bicubic) to
    ``image_size``: uint8 (N, C, image_size, image_size), C = 1 when every image is grayscale,
    else 3."""
    images, gray = [], True
    for path in paths:
        try:
            with Image.open(path) as image:
                gray &= image.mode in GRAYSCALE_MODES
                image = ImageOps.fit(image.convert("RGB"), (image_size, image_size), Image.Resampling.BICUBIC)
        except OSError as err:
            raise GanMetricsError(f"cannot read image {path} ({err}); remove or replace it") from None
        images.append(np.asarray(image))
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    return batch[:, :1].contiguous() if gray else batch.contiguous()


def load_images(data_dir: str | os.PathLike, image_size: int) -> torch.Tensor:
    """Every PNG/JPG under ``data_dir`` (sorted by path), as ``decode_images`` returns them."""
    data_dir = _existing(data_dir)
    paths = image_paths(data_dir)
    if not paths:
        raise GanMetricsError(f"no PNG/JPG images in {data_dir}; put the training images there")
    return decode_images(paths, image_size)


def load_labelled_images(data_dir: str | os.PathLike, image_size: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(images as ``decode_images`` returns them, their classes int64 (N,), the class names):
    class k is the k-th subfolder of ``data_dir`` in sorted order (``sources.class_folders``:
    hidden ones are no class), its images every PNG/JPG under it. Refuses fewer than two classes, an empty class and images outside the classes."""
    data_dir = _existing(data_dir)
    folders = class_folders(data_dir)
    if len(folders) < 2:
        raise GanMetricsError(f"--conditional needs one subfolder of images per class, at least 2, and {data_dir} "
                              f"has {len(folders) or 'none'}; e.g. `ganmetrics toy-data DIR -n N --classes 3`")
    loose = image_paths(data_dir, recursive=False)
    if loose:
        raise GanMetricsError(f"{loose[0]} is in no class: with --conditional every image lies in its class's "
                              f"subfolder of {data_dir}")
    paths, labels = [], []
    for label, folder in enumerate(folders):
        found = image_paths(folder)
        if not found:
            raise GanMetricsError(f"class {folder.name!r} ({folder}) holds no PNG/JPG images; add some or remove it")
        paths += found
        labels += [label] * len(found)
    return decode_images(paths, image_size), torch.tensor(labels), [folder.name for folder in folders]
