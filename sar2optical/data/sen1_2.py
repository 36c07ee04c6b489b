"""TFDS builder `sen1_2`: a data root in any layout `pairs` reads as ArrayRecord, split by a split file.

The root may be the Kaggle copy (16,000 pairs by terrain), the full SEN1-2 from mediaTUM in its
season folders (282,384 pairs; the class is then the season), or same-name folders. Each example
holds the SAR and optical images, the class (its folder name, or season), the scene
("ROIs1970_fall_13", or "") and the patch id (the s1 path relative to the folder, as split files
list it). Two configs:

  pixels  decoded uint8 arrays: about twice the PNGs' size, nothing to decode while training
  png     the images as PNG bytes (re-encoded only where a file is not an L / RGB PNG)

The build needs no TensorFlow; `python -m sar2optical.data.build_tfds` runs it. The split (a
split file, or a seeded split by scene) is stored in the dataset's metadata under "split".
ArrayRecord shards are stored uncompressed: the images hardly compress (PNGs not at all, pixels
by a tenth), and decoding TFDS's default zstd took most of the time of a read.
"""

import functools
import io
import os
import pathlib
from typing import Any

from array_record.python import array_record_module
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds
from tensorflow_datasets.core import file_adapters
from tensorflow_datasets.proto import tf_example_pb2

from sar2optical.data import images
from sar2optical.data import pairs as pairs_lib
from sar2optical.data import splits

_CHANNELS = {"sar": ("L", 1), "optical": ("RGB", 3)}


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
               seasons: tuple[str, ...] = (), **kwargs: Any):
    """`split_file`: a split.json to build the splits from; None: a seeded split by scene.

    `scene_pattern` and `seasons`: which pairs and scenes, as `pairs.find_pairs` takes them.
    """
    self._split_file = split_file
    self._split_seed = split_seed
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

  def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
    root = pathlib.Path(dl_manager.manual_dir)
    found = self._find(root)
    if self._split_file:
      split = splits.read_split(self._split_file)
    else:
      split = splits.make_split(found, seed=self._split_seed)
    self.info.metadata["split"] = split
    return {name: self._generate_examples(root, splits.select(found, split, name))
            for name in splits.SPLIT_NAMES if split["data"][name]}

  def _download_and_prepare(self, dl_manager: tfds.download.DownloadManager,
                            download_config: tfds.download.DownloadConfig) -> None:
    super()._download_and_prepare(dl_manager, download_config)
    if self.info.file_format == file_adapters.FileFormat.ARRAY_RECORD:
      for path in self.data_path.glob("*.array_record-*"):
        _store_uncompressed(os.fspath(path))

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


def _store_uncompressed(path: str) -> None:
  """Rewrites the ArrayRecord file at `path` uncompressed, with the same records in order."""
  reader = array_record_module.ArrayRecordReader(path)
  writer = array_record_module.ArrayRecordWriter(f"{path}.uncompressed", "group_size:1,uncompressed")
  for _ in range(reader.num_records()):
    writer.write(reader.read())
  writer.close()
  reader.close()
  os.replace(f"{path}.uncompressed", path)


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
