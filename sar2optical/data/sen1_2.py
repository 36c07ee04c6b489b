"""TFDS builder `sen1_2`: a data root in any layout `pairs` reads as ArrayRecord, split by a split file.

The root may be the Kaggle copy (16,000 pairs by terrain), the full SEN1-2 from mediaTUM in its
season folders (282,384 pairs; the class is then the season), or same-name folders. Each example
holds the SAR and optical images, the class (its folder name, or season), the scene
("ROIs1970_fall_13", or "") and the patch id (the s1 path relative to the folder, as split files
list it). Two configs:

  pixels  decoded uint8 arrays: about twice the PNGs' size, nothing to decode while training
  png     the images as PNG bytes (re-encoded only where a file is not an L / RGB PNG)

The build needs no TensorFlow; `python -m sar2optical.commands.build_tfds` runs it. The split (a
split file, or a seeded split by scene) is stored in the dataset's metadata under "split". The
shards are written by the builder itself, one example in memory at a time (TFDS's writer needs
TensorFlow past 1 GB), uncompressed: the images hardly compress (PNGs not at all, pixels by a
tenth), and decoding TFDS's default zstd took most of the time of a read. An interrupted build,
started again, keeps the shards it finished.
"""

import functools
import hashlib
import io
import json
import os
import pathlib
import shutil
from collections.abc import Iterable
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from array_record.python import array_record_module
from PIL import Image
from tensorflow_datasets.core import example_serializer, file_adapters
from tensorflow_datasets.proto import tf_example_pb2

from sar2optical.core import storage
from sar2optical.core.errors import DataError
from sar2optical.data import images, splits
from sar2optical.data import pairs as pairs_lib

_CHANNELS = {"sar": ("L", 1), "optical": ("RGB", 3)}
EXAMPLES_PER_SHARD = 1024  # about 270 MB of 256² pixels, 110 MB of PNGs


class Sen12(tfds.core.GeneratorBasedBuilder):
  """SEN1-2 Sentinel-1/Sentinel-2 patch pairs, from a manually downloaded copy (Kaggle `v_2` or mediaTUM)."""

  name = "sen1_2"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "SAR, optical, label, scene and patch id; split by a split file."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="pixels", description="Images as decoded uint8 arrays."),
      tfds.core.BuilderConfig(name="png", description="Images as PNG bytes."),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
  Download "Sentinel-1&2 Image Pairs segregated by terrain" from Kaggle and point the manual dir
  at its v_2 folder (v_2/<class>/s1/*.png, v_2/<class>/s2/*.png), or download SEN1-2 from
  mediaTUM (https://mediatum.ub.tum.de/1436631), extract its four season archives into one folder
  (ROIs1158_spring/s1_1/*.png, ...) and point the manual dir at it.
  """

  def __init__(self, *, split_file: str | None = None, split_seed: int = 0, scene_pattern: str = "",
               seasons: tuple[str, ...] = (), examples_per_shard: int = EXAMPLES_PER_SHARD, **kwargs: Any):
    """`split_file`: a split.json to build the splits from; None: a seeded split by scene.

    `scene_pattern` and `seasons`: which pairs and scenes, as `pairs.find_pairs` takes them.
    `examples_per_shard`: pairs in each ArrayRecord file (the unit a restarted build reuses).
    """
    self._split_file = split_file
    self._split_seed = split_seed
    self._per_shard = examples_per_shard
    self._find = functools.partial(pairs_lib.find_pairs, scene_pattern=scene_pattern, seasons=seasons)
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    if self.builder_config.name == "png":
      image = lambda channels: tfds.features.Image(shape=(None, None, channels), encoding_format="png")
    else:
      image = lambda channels: tfds.features.Tensor(shape=(None, None, channels), dtype=np.uint8,
                                                    encoding=tfds.features.Encoding.BYTES)
    return tfds.core.DatasetInfo(
        builder=self,
        description="Co-registered Sentinel-1 SAR / Sentinel-2 RGB 256x256 patch pairs (SEN1-2).",
        features=tfds.features.FeaturesDict({
            "sar": image(1),
            "optical": image(3),
            "label": tfds.features.Text(),
            "scene": tfds.features.Text(),
            "patch_id": tfds.features.Text(),
        }),
        homepage="https://mediatum.ub.tum.de/1436631",
        citation="Schmitt, Hughes, Zhu: The SEN1-2 dataset for deep learning in SAR-optical data "
                 "fusion. ISPRS Annals IV-1, 141-146, 2018.",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_pairs(self, root: pathlib.Path) -> dict[str, list[pairs_lib.Pair]]:
    """The pairs of each non-empty split, by the split file or a seeded split by scene (kept in the metadata)."""
    found = self._find(root)
    if self._split_file:
      split = splits.read_split(self._split_file)
    else:
      split = splits.make_split(found, seed=self._split_seed)
    self.info.metadata["split"] = split
    return {name: splits.select(found, split, name) for name in splits.SPLIT_NAMES if split["data"][name]}

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    root = pathlib.Path(dl_manager.manual_dir)
    return {name: self._generate_examples(root, pairs) for name, pairs in self._split_pairs(root).items()}

  def _generate_splits(self, dl_manager: tfds.download.DownloadManager,
                       download_config: tfds.download.DownloadConfig) -> list[tfds.core.SplitInfo]:
    """Writes each split's examples to uncompressed ArrayRecord shards one at a time, in split order.

    TFDS's own writer holds a split in memory up to 1 GB, then spills it to bucket files through
    tf.io.gfile, which needs TensorFlow: past 1 GB of examples (the Kaggle copy's pixels are 4 GB,
    SEN1-2's 74 GB) a build without TensorFlow failed. Here memory holds one example; the order is
    the split's (by s1 path), which training shuffles anyway. Finished shards are staged in
    DATA_DIR/.sen1_2_shards/ and moved in when every split is written, so a build interrupted
    (a signal, a corrupt file) and started again with the same root, config and split does not
    write them again.
    """
    del download_config
    if self.info.file_format != file_adapters.FileFormat.ARRAY_RECORD:
      raise DataError(f"sen1_2 is stored as ArrayRecord; build it with file_format=array_record, "
                      f"not {self.info.file_format.value}")
    root = pathlib.Path(dl_manager.manual_dir)
    split_pairs = self._split_pairs(root)
    staging = self._staging_dir(root)
    staged = {name: self._stage_split(name, root, pairs, staging) for name, pairs in split_pairs.items()}
    infos = []
    for name, shards in staged.items():
      template = self._get_filename_template(split_name=name)
      targets = template.sharded_filepaths(len(shards))
      for shard, target in zip(shards, targets):
        os.replace(shard, target)
      infos.append(tfds.core.SplitInfo(
          name=name, shard_lengths=_shard_lengths(len(split_pairs[name]), self._per_shard),
          num_bytes=sum(os.path.getsize(target) for target in targets), filename_template=template))
    shutil.rmtree(staging)
    return infos

  def _staging_dir(self, root: pathlib.Path) -> pathlib.Path:
    """DATA_DIR/.sen1_2_shards/<config>/<digest of the version, root, split and shard size>."""
    key = json.dumps([str(self.VERSION), str(root.resolve()), self.info.metadata["split"], self._per_shard])
    data_root = pathlib.Path(os.fspath(self.data_path)).parents[2]
    return data_root / ".sen1_2_shards" / self.builder_config.name / hashlib.sha256(key.encode()).hexdigest()[:16]

  def _stage_split(self, name: str, root: pathlib.Path, pairs: list[pairs_lib.Pair],
                   staging: pathlib.Path) -> list[pathlib.Path]:
    """The shards of split `name` in `staging`, each written unless an earlier build finished it."""
    serializer = example_serializer.ExampleSerializer(self.info.features.get_serialized_info())
    count = len(_shard_lengths(len(pairs), self._per_shard))
    shards = []
    for index in range(count):
      shard = staging / f"{name}-{index:05d}-of-{count:05d}"
      if not shard.is_file():
        examples = self._generate_examples(root, pairs[index * self._per_shard:(index + 1) * self._per_shard])
        _write_shard(shard, (serializer.serialize_example(self.info.features.encode_example(example))
                             for _, example in examples))
      shards.append(shard)
    return shards

  def _generate_examples(self, root: pathlib.Path, pairs: list[pairs_lib.Pair]):
    encode = _png_bytes if self.builder_config.name == "png" else _pixels
    for pair in pairs:
      yield pair.s1, {
          "sar": encode(root / pair.s1, "sar"),
          "optical": encode(root / pair.s2, "optical"),
          "label": pair.label,
          "scene": pair.scene or "",
          "patch_id": pair.s1,
      }


def parse_example(serialized: bytes) -> dict[str, Any]:
  """A stored example as {"sar", "optical", "label", "scene", "patch_id"}, the texts as bytes.

  The images are uint8 (H, W, C) arrays (read-only) in "pixels" and PNG bytes in "png". It reads
  the tf.train.Example in TFDS's layout itself: TFDS's generic decoding took ten times as long.
  """
  feature = tf_example_pb2.Example.FromString(serialized).features.feature
  example = {key: b"".join(feature[key].bytes_list.value) for key in ("label", "scene", "patch_id")}
  for key in _CHANNELS:
    if key in feature:  # png: tfds.features.Image's bytes.
      example[key] = feature[key].bytes_list.value[0]
    else:  # pixels: tfds.features.Tensor's bytes and shape.
      shape = tuple(feature[f"{key}/shape"].int64_list.value)
      example[key] = np.frombuffer(feature[f"{key}/value"].bytes_list.value[0], np.uint8).reshape(shape)
  return example


def _shard_lengths(count: int, per_shard: int) -> list[int]:
  """Examples in each shard of a split of `count`: `per_shard` each, the last one fewer."""
  return [min(per_shard, count - start) for start in range(0, count, per_shard)]


def _write_shard(path: pathlib.Path, records: Iterable[bytes]) -> None:
  """Writes `records` to an uncompressed ArrayRecord file at `path`, which appears only when complete."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with storage.written_whole(path) as temporary:
    writer = array_record_module.ArrayRecordWriter(os.fspath(temporary), "group_size:1,uncompressed")
    try:
      for record in records:
        writer.write(record)
    finally:
      writer.close()


def _pixels(path: pathlib.Path, kind: str) -> np.ndarray:
  return images.load_image(path, _CHANNELS[kind][0], None)


def _png_bytes(path: pathlib.Path, kind: str) -> bytes:
  """The file's bytes when it is a PNG in the right mode, else the decoded image as PNG."""
  pixels = _pixels(path, kind)  # Decodes fully: a corrupt file fails the build, named.
  data = path.read_bytes()
  with Image.open(io.BytesIO(data)) as image:
    if image.format == "PNG" and image.mode == _CHANNELS[kind][0]:
      return data
  encoded = io.BytesIO()
  Image.fromarray(pixels[..., 0] if kind == "sar" else pixels).save(encoded, format="PNG")
  return encoded.getvalue()
