"""Read a PyTorch state dict saved in the legacy (pre-1.6, non-zip) format without torch.

The file is a run of pickles: magic number, protocol version, system info, then the
state dict whose tensors point at storages by key, then the storage keys in file order,
then each storage's raw bytes (an int64 element count followed by the elements). The
unpickler below accepts only the handful of globals such a file needs and maps the
tensor-rebuild function to numpy, so a tampered file cannot run code.
"""

from __future__ import annotations

import collections
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _TensorRef:
    """A tensor before its storage bytes are read: a strided view of storage ``key``."""

    key: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(
    key: str, offset: int, shape: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> _TensorRef:
    return _TensorRef(key, offset, tuple(shape), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.storage_types: dict[str, _StorageType] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")

    def persistent_load(self, pid: Any) -> str:
        kind, storage_type, key, _location, _numel, view_metadata = pid
        if kind != "storage" or view_metadata is not None:
            raise pickle.UnpicklingError(f"unsupported storage reference {pid!r}")
        self.storage_types[key] = storage_type
        return key


def _plain_load(f: BinaryIO) -> Any:
    """A pickle that must hold only plain data (numbers, strings, dicts, lists)."""
    return _RestrictedUnpickler(f).load()


def load_legacy_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The state dict as contiguous float/int numpy arrays, keyed by parameter name."""
    with path.open("rb") as f:
        if _plain_load(f) != LEGACY_MAGIC:
            raise ValueError(f"{path} is not a legacy PyTorch file (zip files need torch)")
        if _plain_load(f) != LEGACY_PROTOCOL:
            raise ValueError(f"{path}: unsupported PyTorch protocol version")
        info = _plain_load(f)
        if not info.get("little_endian", False):
            raise ValueError(f"{path}: big-endian files are not supported")
        unpickler = _RestrictedUnpickler(f)
        state = unpickler.load()
        keys = _plain_load(f)
        storages: dict[str, np.ndarray] = {}
        for key in keys:
            dtype = _STORAGE_DTYPES[unpickler.storage_types[key].name]
            count = int(np.frombuffer(f.read(8), "<i8")[0])
            data = f.read(count * dtype.itemsize)
            if len(data) != count * dtype.itemsize:
                raise ValueError(f"{path}: truncated storage {key}")
            storages[key] = np.frombuffer(data, dtype)
    return {name: _materialise(ref, storages) for name, ref in state.items()}


def _materialise(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    flat = storages[ref.key]
    if not ref.shape:
        return flat[ref.offset : ref.offset + 1].reshape(()).copy()
    # Strides count elements; some tensors here are stored channels-last (converted from
    # TensorFlow), so the view must follow them rather than assume C order.
    itemsize = flat.dtype.itemsize
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride, strict=True))
    if last >= flat.size:
        raise ValueError(f"tensor view past the end of storage {ref.key}")
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset :],
        shape=ref.shape,
        strides=tuple(s * itemsize for s in ref.stride),
        writeable=False,
    )
    return np.ascontiguousarray(view)
