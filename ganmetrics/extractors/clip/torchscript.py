"""The tensors of a TorchScript archive, read without running anything that is not a tensor.

OpenAI publishes its CLIP weights as TorchScript archives (``ViT-L-14-336px.pt``,
``ViT-B-32.pt``): a zip holding ``ARCHIVE/data.pkl`` (the pickled module tree), one record
``ARCHIVE/data/KEY`` per tensor storage, ``ARCHIVE/constants.pkl`` and the module's code.
``torch.jit.load`` would compile and run that code, and ``torch.load(weights_only=True)``
refuses such archives, so ``read_torchscript_tensors`` unpickles ``data.pkl`` with an unpickler
that admits only:

- ``__torch__.*`` classes (the scripted modules), each rebuilt as an inert ``ScriptObject``
  that keeps its attributes as a dict (nothing of the archive's code is imported or run);
- ``torch._utils._rebuild_tensor_v2`` (done here: a strided view of a storage, bounds checked);
- ``torch.<Dtype>Storage`` (which element type a storage holds);
- ``collections.OrderedDict`` and ``torch.jit._pickle``'s type tags (plain containers);

and resolves each persistent id ``("storage", type, key, location, numel)`` to the bytes of
``ARCHIVE/data/KEY``, read into a CPU tensor (its size checked against the record first). Any
other global is refused in one line. The result is the module tree's tensors by dotted
attribute path: the keys ``torch.jit.load(path).state_dict()`` gives.
"""

from __future__ import annotations

import io
import pickle
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import GanMetricsError, describe_error, quoted

if TYPE_CHECKING:
    import torch

_STORAGE_DTYPES = {
    "HalfStorage": "float16", "FloatStorage": "float32", "DoubleStorage": "float64", "BFloat16Storage": "bfloat16",
    "ByteStorage": "uint8", "CharStorage": "int8", "ShortStorage": "int16", "IntStorage": "int32",
    "LongStorage": "int64", "BoolStorage": "bool",
}
"""The storage classes a TorchScript ``data.pkl`` names, by the ``torch`` dtype they hold."""


def is_torchscript_archive(path: str | Path) -> bool:
    """Whether ``path`` is a zip with a top-level ``ARCHIVE/constants.pkl`` (what marks
    TorchScript: a ``torch.save`` zip has none). False for anything that is not a readable zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.count("/") == 1 and name.endswith("/constants.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


class ScriptObject:
    """A scripted module (or other ``__torch__`` object) of the archive: inert, its attributes
    in ``state`` (what the pickle's BUILD gives it; unpickling creates it without ``__init__``)."""

    state: dict = {}

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {}


class _StorageType:
    """A ``torch.<Dtype>Storage`` global: the element type of the storages it labels."""

    def __init__(self, dtype_name: str):
        self.dtype_name = dtype_name


def _type_tag(value, *_):
    """``torch.jit._pickle``'s ``restore_type_tag``/``build_*list``: the value itself."""
    return value


class _TensorUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript ``data.pkl`` admitting only what the module docstring lists."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, path: Path):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.path = archive, prefix, path
        self.storages: dict[str, torch.Tensor] = {}

    def refuse(self, what: str) -> GanMetricsError:
        return GanMetricsError(f"weights file {quoted(self.path)} is a TorchScript archive whose data.pkl {what}: "
                               "refusing to read it; use the official file or a plain state dict")

    def find_class(self, module: str, name: str):
        if module == "__torch__" or module.startswith("__torch__."):
            return ScriptObject
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return self.rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch.jit._pickle" and (name == "restore_type_tag" or name.startswith("build_")
                                              and name.endswith("list")):
            return _type_tag
        raise self.refuse(f"references {quoted(module)}.{quoted(name)}, which is not a tensor or a plain container")

    def persistent_load(self, pid):
        import torch

        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise self.refuse(f"holds a persistent id {quoted(repr(pid)[:80])} that is not a tensor storage")
        kind, key, numel = pid[1], pid[2], pid[4]
        if key not in self.storages:
            dtype = getattr(torch, kind.dtype_name)
            name = f"{self.prefix}data/{key}"
            try:
                record = self.archive.getinfo(name)
            except KeyError:
                raise self.refuse(f"names a storage {quoted(key)} that the archive lacks (a damaged file?)") from None
            nbytes = numel * torch.empty((), dtype=dtype).element_size()
            if numel < 0 or record.file_size != nbytes:
                raise self.refuse(f"gives storage {quoted(key)} {numel} elements, but its record holds "
                                  f"{record.file_size} bytes (a damaged file?)")
            storage = torch.empty(nbytes, dtype=torch.uint8)
            with self.archive.open(record) as stream:
                if stream.readinto(memoryview(storage.numpy())) != nbytes:
                    raise self.refuse(f"has a storage record {quoted(key)} shorter than it says (a truncated file?)")
            self.storages[key] = storage.view(dtype)
        return self.storages[key]

    def rebuild_tensor(self, storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
        """``torch._utils._rebuild_tensor_v2``: the view of ``storage`` it describes, if it lies inside it."""
        import torch

        ints = (isinstance(offset, int) and isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride) and all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride)))
        if not isinstance(storage, torch.Tensor) or not ints:
            raise self.refuse("describes a tensor with malformed arguments")
        if all(size) and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.numel():
            raise self.refuse("describes a tensor that reaches past its storage (a damaged file?)")
        return storage.as_strided(size, stride, offset)


MAX_DEPTH = 64
"""The deepest module nesting read (a module tree is a few levels deep; a hostile one, any)."""


def _flatten(obj: ScriptObject, prefix: str, out: dict, depth: int = 0) -> bool:
    """Add every tensor attribute of ``obj`` and of the objects it holds to ``out``, keyed by
    dotted path; False where the nesting passes ``MAX_DEPTH``."""
    import torch

    for name, value in obj.state.items():
        if isinstance(value, torch.Tensor):
            out[prefix + str(name)] = value
        elif isinstance(value, ScriptObject) and (depth == MAX_DEPTH or not _flatten(value, f"{prefix}{name}.", out, depth + 1)):
            return False
    return True


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """{dotted attribute path: CPU tensor} of the TorchScript archive at ``path`` (as its
    ``state_dict()``, plus any plain tensor attribute), read as the module docstring says;
    anything else in its ``data.pkl``, or a damaged archive, is a one-line ``GanMetricsError``."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.count("/") == 1 and name.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise GanMetricsError(f"weights file {quoted(path)} is not a TorchScript archive with one data.pkl: "
                                      "use the official file or a plain state dict")
            prefix = pickles[0][:-len("data.pkl")]
            if prefix + "byteorder" in archive.namelist() and archive.read(prefix + "byteorder").decode() != sys.byteorder:
                raise GanMetricsError(f"weights file {quoted(path)} was written on a machine of the other byte "
                                      "order: convert it to a plain state dict there")
            root = _TensorUnpickler(archive.read(pickles[0]), archive, prefix, path).load()
    except GanMetricsError:
        raise
    except Exception as err:  # zipfile, pickle and a hostile stream raise many types
        raise GanMetricsError(f"cannot read weights file {quoted(path)} ({describe_error(err)}): it must be a "
                              "TorchScript archive or a plain state dict") from None
    if not isinstance(root, ScriptObject):
        raise GanMetricsError(f"weights file {quoted(path)} is a TorchScript archive without a module: "
                              "use the official file or a plain state dict")
    tensors: dict = {}
    if not _flatten(root, "", tensors):
        raise GanMetricsError(f"weights file {quoted(path)} nests modules more than {MAX_DEPTH} deep: "
                              "use the official file or a plain state dict")
    return tensors
