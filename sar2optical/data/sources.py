"""Random-access sources of SAR/optical pairs for the grain pipeline: a folder or a TFDS build.

A source is a sequence of records (len and indexing, as grain's data sources) with a `decode`
that turns one record into {"sar": uint8 (H, W, 1), "optical": uint8 (H, W, 3)} at the stored
size, raising DataError that names the record's file when it cannot.
"""

import dataclasses
import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from sar2optical.core import storage
from sar2optical.core.errors import DataError
from sar2optical.data import images
from sar2optical.data.pairs import Pair

TFDS_CONFIGS = ("pixels", "png")


class PairSource(Protocol):
  """What the training pipeline reads: records by index, and their decoding."""

  description: str  # What and where, for log lines and errors.

  def __len__(self) -> int:
    ...

  def __getitem__(self, index: int) -> Any:
    ...

  def decode(self, record: Any) -> dict[str, np.ndarray]:
    ...

  def name_and_label(self, index: int) -> tuple[str, str]:
    """The record's s1 path (as split files list it) and class, for reports."""
    ...


class FolderSource:
  """Pairs of PNG (or other Pillow-readable) files under a data root.

  The pairs are held as arrays (paths as UTF-8 byte strings, classes and scenes as codes), not one
  Python object each: a source of SEN1-2's 282,384 pairs is a few tens of MB that pickle to each
  grain worker process as a handful of buffers. Records are `Pair`s, made when read.
  """

  def __init__(self, root: str | os.PathLike[str], pairs: Sequence[Pair]):
    self.root = storage.as_path(root, "the data root")
    self._s1 = np.array([pair.s1.encode() for pair in pairs], dtype=np.bytes_)
    self._s2 = np.array([pair.s2.encode() for pair in pairs], dtype=np.bytes_)
    self._labels, self._label_codes = np.unique([pair.label for pair in pairs], return_inverse=True)
    self._scenes, self._scene_codes = np.unique([pair.scene or "" for pair in pairs], return_inverse=True)
    self.description = f"{len(self)} pairs in {self.root}"

  def __len__(self) -> int:
    return len(self._s1)

  def __getitem__(self, index: int) -> Pair:
    return Pair(self._s1[index].decode(), self._s2[index].decode(), str(self._labels[self._label_codes[index]]),
                str(self._scenes[self._scene_codes[index]]) or None)

  def decode(self, record: Pair) -> dict[str, np.ndarray]:
    sar_path, optical_path = self.root / record.s1, self.root / record.s2
    return images.check_pair(images.load_image(sar_path, "L", None), images.load_image(optical_path, "RGB", None),
                             str(sar_path), str(optical_path))

  def name_and_label(self, index: int) -> tuple[str, str]:
    return self._s1[index].decode(), str(self._labels[self._label_codes[index]])


class TfdsSource:
  """One split of a `sen1_2` TFDS build, read with `tfds.data_source` (ArrayRecord, random access).

  Records are `sen1_2.parse_example`'s dicts. The "pixels" config stores decoded uint8 arrays; the
  "png" config stores PNG bytes, which are decoded here (not by TFDS) so that a corrupt one is
  reported by its patch id.
  """

  def __init__(self, split: str, *, data_dir: str = "", config: str = "pixels"):
    # TFDS takes seconds to import: only runs that read a TFDS build pay for it.
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    from sar2optical.data import sen1_2  # pylint: disable=g-import-not-at-top
    if config not in TFDS_CONFIGS:
      raise DataError(f"unknown sen1_2 config {config!r}; expected one of {', '.join(TFDS_CONFIGS)}")
    builder = sen1_2.Sen12(config=config, data_dir=data_dir or None)
    if not builder.is_prepared():
      raise DataError(
          f"no sen1_2/{config} build in {builder.data_dir}: build it with python -m "
          f"sar2optical.data.build_tfds --manual_dir=/path/to/v_2 --config={config}"
          + (f" --data_dir={data_dir}" if data_dir else ""))
    if split not in builder.info.splits:
      raise DataError(f"the sen1_2/{config} build in {builder.data_dir} has no split {split!r} "
                      f"(it has {', '.join(builder.info.splits)})")
    self.description = f"sen1_2/{config} {split} in {builder.data_dir}"
    self.split_file = builder.info.metadata["split"]
    self._records = builder.as_data_source(
        split=split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
    self._parse = sen1_2.parse_example  # sen1_2 (and TFDS) are imported only when a build is read

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index: int) -> dict[str, Any]:
    return self._parse(self._records[index])

  def name_and_label(self, index: int) -> tuple[str, str]:
    record = self[index]
    return record["patch_id"].decode(), record["label"].decode()

  def decode(self, record: dict[str, Any]) -> dict[str, np.ndarray]:
    name = f"{record['patch_id'].decode()} of {self.description}"
    sar, optical = (images.decode_image(record[key], mode, f"{key} image {name}")
                    if isinstance(record[key], bytes) else record[key]
                    for key, mode in (("sar", "L"), ("optical", "RGB")))
    return images.check_pair(sar, optical, name, name)


@dataclasses.dataclass(frozen=True)
class Reordered:
  """`source` read in another order: record i is `source[order[i]]`."""
  source: PairSource
  order: np.ndarray

  @property
  def description(self) -> str:
    return self.source.description

  def __len__(self) -> int:
    return len(self.order)

  def __getitem__(self, index: int) -> Any:
    return self.source[int(self.order[index])]

  def decode(self, record: Any) -> dict[str, np.ndarray]:
    return self.source.decode(record)

  def name_and_label(self, index: int) -> tuple[str, str]:
    return self.source.name_and_label(int(self.order[index]))
