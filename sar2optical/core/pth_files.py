"""Reads PyTorch `.pth` state_dicts into numpy arrays without torch and without running pickled code.

`torch.save` (torch ≥ 1.6) writes a zip: `<name>/data.pkl` (a pickle of the state_dict),
`<name>/data/<key>` (each storage's raw bytes) and `<name>/byteorder`. The pickle names
`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and storage types such as
`torch.FloatStorage`, and refers to storages through `persistent_load(('storage', type, key,
location, numel))`. `_RestrictedUnpickler.find_class` resolves exactly those names to our own
functions that build numpy arrays and refuses every other global, so nothing a file names is ever
imported or called.

The legacy format of torch < 1.6 (still that of many published weights: torchvision's ImageNet
models, pytorch-fid's Inception, the lpips package's linear layers) is one stream: pickles of the
magic number, the protocol version and the system's byte order, the state_dict's pickle (storages
named by `('storage', type, key, location, numel, view_metadata)`), the list of storage keys, then
each storage as its element count (int64) followed by its raw bytes. The same unpickler reads it.
"""

import collections
import pathlib
import pickle
import zipfile
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO, NamedTuple

import ml_dtypes
import numpy as np

from sar2optical.core.errors import CheckpointError

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


_LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
_LEGACY_PROTOCOL = 1001


class _TensorRecord(NamedTuple):
  """A tensor named by the pickle: a strided view of a storage, made an array once the storages are read."""
  storage: _StorageRef
  offset: int
  size: tuple[int, ...]
  stride: tuple[int, ...]


class _PlainUnpickler(pickle.Unpickler):
  """Unpickles plain data (numbers, strings, lists, dicts); refuses every global and persistent id."""

  def __init__(self, file: BinaryIO, path: pathlib.Path):
    super().__init__(file)
    self._path = path

  def find_class(self, module: str, name: str) -> Any:
    raise CheckpointError(f"{self._path}: refused to load global {module}.{name}: only tensors, storages and "
                          "OrderedDict are allowed in a state_dict (nothing was executed)")

  def persistent_load(self, pid: Any) -> Any:
    raise CheckpointError(f"{self._path}: unexpected persistent id {pid!r}")


class _RestrictedUnpickler(_PlainUnpickler):
  """Unpickles a torch state_dict into tensor records; any global but tensor rebuilding and OrderedDict is refused."""

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
    return super().find_class(module, name)

  def persistent_load(self, pid: Any) -> _StorageRef:
    """A storage: `('storage', type, key, location, numel)`, with a trailing `None` view in the legacy format."""
    if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage"
        or not isinstance(pid[1], _StorageType) or not isinstance(pid[2], str) or not _is_int_tuple(pid[4:5])
        or pid[5:] not in ((), (None,))):
      raise CheckpointError(f"{self._path}: unsupported persistent id {pid!r} (expected a tensor storage)")
    return _StorageRef(pid[2], pid[1].dtype, pid[4])

  def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any, *unused: Any) -> _TensorRecord:
    """`torch._utils._rebuild_tensor_v2`: the record of a strided view of a storage."""
    del unused  # requires_grad, backward hooks, metadata
    if (not isinstance(storage, _StorageRef) or not _is_int_tuple(size) or not _is_int_tuple(stride)
        or len(size) != len(stride) or not isinstance(offset, int)):
      raise CheckpointError(f"{self._path}: malformed tensor record (storage {storage!r}, offset {offset!r}, "
                            f"size {size!r}, stride {stride!r})")
    return _TensorRecord(storage, offset, size, stride)

  def _rebuild_parameter(self, data: Any, *unused: Any) -> _TensorRecord:
    """`torch._utils._rebuild_parameter`: a Parameter is its tensor."""
    del unused  # requires_grad, backward hooks
    if not isinstance(data, _TensorRecord):
      raise CheckpointError(f"{self._path}: malformed parameter record {data!r}")
    return data


def _materialise(record: _TensorRecord, storage: Callable[[_StorageRef], np.ndarray],
                 path: pathlib.Path) -> np.ndarray:
  """A tensor record → its array, copied out of the storage's elements; the view is checked to stay inside."""
  index = np.full((), record.offset, np.int64)
  for length, step in zip(record.size, record.stride):
    index = index[..., None] + np.arange(length, dtype=np.int64) * step
  if index.size and (index.min() < 0 or index.max() >= record.storage.numel):
    raise CheckpointError(f"{path}: tensor of size {record.size} (offset {record.offset}, stride {record.stride}) "
                          f"reaches outside its storage of {record.storage.numel} elements")
  return np.asarray(storage(record.storage)[index])


def _storage_array(raw: bytes, ref: _StorageRef, byteorder: str, what: str, path: pathlib.Path) -> np.ndarray:
  """`ref.numel` elements of `ref.dtype` in `byteorder` from `raw`, in native order; short data is an error."""
  dtype = ref.dtype.newbyteorder(byteorder)
  if len(raw) < ref.numel * dtype.itemsize:
    raise CheckpointError(f"{path}: storage {what} holds {len(raw)} bytes, fewer than {ref.numel} × {dtype.itemsize}")
  return np.frombuffer(raw, dtype, ref.numel).astype(ref.dtype)


def _load_zip(path: pathlib.Path) -> Any:
  """The pickled object of a zip-based `.pth`, its tensors as arrays."""
  with zipfile.ZipFile(path) as archive:
    prefix = _pickle_prefix(archive, path)
    byteorder = _zip_byteorder(archive, prefix, path)
    loaded = _RestrictedUnpickler(archive.open(f"{prefix}data.pkl"), path).load()
    cache: dict[str, np.ndarray] = {}

    def storage(ref: _StorageRef) -> np.ndarray:
      if ref.key not in cache:
        name = f"{prefix}data/{ref.key}"
        try:
          raw = archive.read(name)
        except KeyError:
          raise CheckpointError(f"{path}: storage {name} is missing from the archive") from None
        cache[ref.key] = _storage_array(raw, ref, byteorder, name, path)
      return cache[ref.key]

    return _materialised(loaded, storage, path)


def _zip_byteorder(archive: zipfile.ZipFile, prefix: str, path: pathlib.Path) -> str:
  """'<' or '>': the zip's `<name>/byteorder` record (absent before torch 1.10: little-endian)."""
  name = f"{prefix}byteorder"
  if name not in archive.namelist():
    return "<"
  order = archive.read(name).decode("ascii", "replace").strip()
  if order not in ("little", "big"):
    raise CheckpointError(f"{path}: unknown byteorder {order!r}")
  return "<" if order == "little" else ">"


def _is_legacy(path: pathlib.Path) -> bool:
  """Whether the file starts with the pickled magic number of torch's legacy (< 1.6) format."""
  with open(path, "rb") as file:
    try:
      return _PlainUnpickler(file, path).load() == _LEGACY_MAGIC
    except Exception:  # any other content: not a legacy torch file
      return False


def _load_legacy(path: pathlib.Path) -> Any:
  """The pickled object of a legacy-format `.pth` (torch < 1.6), its tensors as arrays."""
  with open(path, "rb") as file:
    _PlainUnpickler(file, path).load()  # the magic number
    protocol = _PlainUnpickler(file, path).load()
    if protocol != _LEGACY_PROTOCOL:
      raise CheckpointError(f"{path}: legacy torch format of protocol {protocol!r}; only {_LEGACY_PROTOCOL} is read")
    system = _PlainUnpickler(file, path).load()
    byteorder = "<" if not isinstance(system, dict) or system.get("little_endian", True) else ">"
    loaded = _RestrictedUnpickler(file, path).load()
    keys = _PlainUnpickler(file, path).load()
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
      raise CheckpointError(f"{path}: malformed list of storage keys in the legacy format")
    refs = {record.storage.key: record.storage for record in _records(loaded)}
    arrays = {}
    for key in keys:
      ref = refs.get(key)
      count = int.from_bytes(file.read(8), "little" if byteorder == "<" else "big", signed=True)
      if ref is None or count < ref.numel:
        raise CheckpointError(f"{path}: storage {key} of the legacy format does not match the tensors naming it")
      arrays[key] = _storage_array(file.read(count * ref.dtype.itemsize), ref, byteorder, key, path)
  missing = sorted(set(refs) - set(arrays))
  if missing:
    raise CheckpointError(f"{path}: storages {', '.join(missing[:5])} are missing from the legacy-format file")
  return _materialised(loaded, lambda ref: arrays[ref.key], path)


def _records(loaded: Any) -> list[_TensorRecord]:
  """The tensor records among a loaded state_dict's values."""
  return [value for value in loaded.values() if isinstance(value, _TensorRecord)] if isinstance(loaded, Mapping) else []


def _materialised(loaded: Any, storage: Callable[[_StorageRef], np.ndarray], path: pathlib.Path) -> Any:
  """A state_dict with each tensor record made an array; anything else is returned as it is (and refused later)."""
  if not isinstance(loaded, Mapping):
    return loaded
  return {key: _materialise(value, storage, path) if isinstance(value, _TensorRecord) else value
          for key, value in loaded.items()}


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

  Reads the zip-based format (torch ≥ 1.6) and the legacy one. Raises CheckpointError naming the
  file for a missing file, a file of neither format, a pickle naming anything but tensors and plain containers, or content that is not a state_dict.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise CheckpointError(f"{path}: file not found")
  legacy = not zipfile.is_zipfile(path) and _is_legacy(path)
  if not zipfile.is_zipfile(path) and not legacy:
    raise CheckpointError(f"{path}: not a torch.save file (neither zip-based nor the legacy format of torch < 1.6)")
  try:
    loaded = _load_legacy(path) if legacy else _load_zip(path)
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
