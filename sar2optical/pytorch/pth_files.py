"""Reads PyTorch `.pth` state_dicts into numpy arrays without torch and without running pickled code.

`torch.save` (torch ≥ 1.6) writes a zip: `<name>/data.pkl` (a pickle of the state_dict),
`<name>/data/<key>` (each storage's raw bytes) and `<name>/byteorder`. The pickle names
`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and storage types such as
`torch.FloatStorage`, and refers to storages through `persistent_load(('storage', type, key,
location, numel))`. `_RestrictedUnpickler.find_class` resolves exactly those names to our own
functions that build numpy arrays and refuses every other global, so nothing a file names is ever
imported or called.
"""

import collections
import pathlib
import pickle
import zipfile
from collections.abc import Mapping
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np

from sar2optical.errors import CheckpointError

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class _StorageType(NamedTuple):
  """What a `torch.<Type>Storage` global resolves to: immutable and not callable."""
  dtype: np.dtype


class _StorageRef(NamedTuple):
  """A storage named by the pickle; its bytes are read when a tensor is rebuilt from it."""
  key: str
  dtype: np.dtype
  numel: int


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickles a torch state_dict; any global but tensor rebuilding and OrderedDict is refused."""

  def __init__(self, archive: zipfile.ZipFile, prefix: str, path: pathlib.Path):
    super().__init__(archive.open(f"{prefix}data.pkl"))
    self._archive, self._prefix, self._path = archive, prefix, path
    self._byteorder = self._read_byteorder()
    self._storages: dict[str, np.ndarray] = {}

  def _read_byteorder(self) -> str:
    name = f"{self._prefix}byteorder"
    if name not in self._archive.namelist():
      return "<"  # written by torch before 1.10: always little-endian
    order = self._archive.read(name).decode("ascii", "replace").strip()
    if order not in ("little", "big"):
      raise CheckpointError(f"{self._path}: unknown byteorder {order!r}")
    return "<" if order == "little" else ">"

  def find_class(self, module: str, name: str) -> Any:
    qualified = f"{module}.{name}"
    if qualified == "collections.OrderedDict":
      return collections.OrderedDict
    if qualified == "torch._utils._rebuild_tensor_v2":
      return self._rebuild_tensor
    if qualified == "torch._utils._rebuild_parameter":
      return self._rebuild_parameter
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(np.dtype(_STORAGE_DTYPES[name]))
    raise CheckpointError(f"{self._path}: refused to load global {qualified}: only tensors, storages and "
                          "OrderedDict are allowed in a state_dict (nothing was executed)")

  def persistent_load(self, pid: Any) -> _StorageRef:
    if (not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage" or not isinstance(pid[1], _StorageType)
        or not isinstance(pid[2], str) or not _is_int_tuple(pid[4:])):
      raise CheckpointError(f"{self._path}: unsupported persistent id {pid!r} (expected a tensor storage)")
    return _StorageRef(pid[2], pid[1].dtype, pid[4])

  def _storage(self, ref: _StorageRef) -> np.ndarray:
    if ref.key not in self._storages:
      name = f"{self._prefix}data/{ref.key}"
      try:
        raw = self._archive.read(name)
      except KeyError:
        raise CheckpointError(f"{self._path}: storage {name} is missing from the archive") from None
      dtype = ref.dtype.newbyteorder(self._byteorder)
      if len(raw) < ref.numel * dtype.itemsize:
        raise CheckpointError(f"{self._path}: storage {name} holds {len(raw)} bytes, fewer than "
                              f"{ref.numel} × {dtype.itemsize}")
      self._storages[ref.key] = np.frombuffer(raw, dtype, ref.numel).astype(ref.dtype)
    return self._storages[ref.key]

  def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *unused: Any) -> np.ndarray:
    """`torch._utils._rebuild_tensor_v2`: the strided view of a storage, copied into an array."""
    del unused  # requires_grad, backward hooks, metadata
    if (not isinstance(storage, _StorageRef) or not _is_int_tuple(size) or not _is_int_tuple(stride)
        or len(size) != len(stride) or not isinstance(offset, int)):
      raise CheckpointError(f"{self._path}: malformed tensor record (storage {storage!r}, offset {offset!r}, "
                            f"size {size!r}, stride {stride!r})")
    data = self._storage(storage)
    index = np.full((), offset, np.int64)
    for length, step in zip(size, stride):
      index = index[..., None] + np.arange(length, dtype=np.int64) * step
    if index.size and (index.min() < 0 or index.max() >= storage.numel):
      raise CheckpointError(f"{self._path}: tensor of size {size} (offset {offset}, stride {stride}) reaches "
                            f"outside its storage of {storage.numel} elements")
    return np.asarray(data[index])

  def _rebuild_parameter(self, data: Any, *unused: Any) -> np.ndarray:
    """`torch._utils._rebuild_parameter`: a Parameter is its tensor."""
    del unused  # requires_grad, backward hooks
    if not isinstance(data, np.ndarray):
      raise CheckpointError(f"{self._path}: malformed parameter record {data!r}")
    return data


def _is_int_tuple(value: Any) -> bool:
  return isinstance(value, tuple) and all(isinstance(v, int) and v >= 0 for v in value)


def _pickle_prefix(archive: zipfile.ZipFile, path: pathlib.Path) -> str:
  """The `<name>/` folder that holds data.pkl (torch names it after the file)."""
  prefixes = [name.removesuffix("data.pkl") for name in archive.namelist()
              if name.endswith("/data.pkl") and name.count("/") == 1]
  if len(prefixes) != 1:
    raise CheckpointError(f"{path}: not a torch.save state_dict (expected one <name>/data.pkl in the zip, found "
                          f"{len(prefixes)}; TorchScript files from torch.jit.save are not supported)")
  return prefixes[0]


def load_state_dict(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """The state_dict saved at `path` as {name: numpy array}, read without torch or executing pickled code.

  Raises CheckpointError naming the file for a missing file, the legacy (pre-1.6, non-zip) format,
  a pickle naming anything but tensors and plain containers, or content that is not a state_dict.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise CheckpointError(f"{path}: file not found")
  if not zipfile.is_zipfile(path):
    raise CheckpointError(f"{path}: not a zip-based .pth; the legacy format of torch < 1.6 is not supported "
                          "(re-save it with a current torch: torch.save(torch.load(F, weights_only=True), NEW))")
  try:
    with zipfile.ZipFile(path) as archive:
      loaded = _RestrictedUnpickler(archive, _pickle_prefix(archive, path), path).load()
  except CheckpointError:
    raise
  except Exception as error:  # a corrupt or hostile pickle fails in many ways; report each as this file's fault
    raise CheckpointError(f"{path}: cannot read the pickled state_dict: {type(error).__name__}: {error}") from None
  if not isinstance(loaded, Mapping):
    raise CheckpointError(f"{path}: holds a {type(loaded).__name__}, not a state_dict (names → tensors)")
  not_tensors = sorted(str(k) for k, v in loaded.items() if not isinstance(k, str) or not isinstance(v, np.ndarray))
  if not_tensors:
    raise CheckpointError(f"{path}: not a state_dict (names → tensors); these entries are not tensors: "
                          f"{', '.join(not_tensors[:10])}")
  return dict(loaded)
