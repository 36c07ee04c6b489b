r"""Draws the README's results figure: real SAR/optical pairs, each translated by trained models as the API does.

  python docs/figures.py --train --data_root=../shared/data/sen1-2 --workdir=runs/figure
  python docs/figures.py --model=quickstart=runs/quickstart --model=longer=runs/longer [--pairs=DIR] [--rows=4]

Columns: SAR | one per model | target; one row per pair, labelled with its class and scene. The pairs are the
test split the first model's run recorded (WORKDIR/split.json), or those under --pairs, picked one per class and
scene in turn, evenly through each, in name order (the same pairs every time). Each model translates each SAR
image with `sar2optical.load(WORKDIR).translate(sar)`: predict.py's tiles at the model's pixel scale.

--train first trains the packaged quickstart config on --data_root in --workdir (resuming an unfinished run;
nothing when it is finished); --workdir is the first column, labelled quickstart. Writes --output (PNG) and,
beside it, a .json sidecar: the models (workdir, step, config fields), the pairs and each tile's PSNR in dB
against its target (the uint8 tile shown, data range 255).
"""

import collections
import io
import json
import pathlib
import posixpath
import shlex
import sys
from collections.abc import Sequence

import dm_pix
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import flags, logging
from PIL import Image

import sar2optical
from sar2optical.checkpoints import manager
from sar2optical.commands import cli
from sar2optical.configs import fields, quickstart
from sar2optical.core import storage
from sar2optical.core.errors import CheckpointError, ConfigError, DataError
from sar2optical.data import pairs as pairs_lib
from sar2optical.data import resolve, sources
from sar2optical.inference.restore import TrainedGenerator
from sar2optical.inference.translator import Translator
from sar2optical.training.log import pair_grid

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Defines the command-line flags, only when run as a script, so that imports never clash."""
  flags.DEFINE_multi_string("model", [], "LABEL=WORKDIR: a trained workdir's latest checkpoint, one column titled "
                            "LABEL; repeat for more columns, in order.")
  flags.DEFINE_bool("train", False, "First train the packaged quickstart config on --data_root in --workdir "
                    "(resumes an unfinished run; nothing when it is finished).")
  flags.DEFINE_string("workdir", None, "The quickstart run's workdir (--train trains there): the first column, "
                      "labelled quickstart.")
  flags.DEFINE_string("data_root", None, "SEN1-2 folder: what --train trains on and where the test split's pairs "
                      "are read; default: the first model's config.data.root.")
  flags.DEFINE_string("pairs", None, "Show pairs from this folder (any layout training reads) instead of the "
                      "first model's test split.")
  flags.DEFINE_integer("rows", 4, "Pairs shown, one per class and scene in turn.", lower_bound=1)
  flags.DEFINE_string("output", "docs/images/results.png", "The PNG; the .json sidecar goes beside it.")


QUICKSTART_LABEL = "quickstart"
#: The config fields the sidecar records for each model.
RECORDED_FIELDS = ("image_size", "data.fit", "model.levels", "num_train_steps", "batch_size")


def parse_models(workdir: str | None, models: Sequence[str]) -> list[tuple[str, str]]:
  """[(label, workdir)]: the quickstart --workdir first (when given), then each --model=LABEL=WORKDIR."""
  parsed = [(QUICKSTART_LABEL, workdir)] if workdir else []
  for model in models:
    label, equals, path = model.partition("=")
    if not (label and equals and path):
      raise ConfigError(f"--model={model}: expected LABEL=WORKDIR, e.g. --model=quickstart=runs/quickstart")
    parsed.append((label, path))
  if not parsed:
    raise ConfigError("--model: give at least one model (--model=LABEL=WORKDIR, or --workdir)")
  return parsed


def train_quickstart(workdir: str, data_root: str | None) -> None:
  """Trains the packaged quickstart config on `data_root` in `workdir` unless its final checkpoint is there."""
  if not data_root:
    raise ConfigError("--data_root: required with --train (the SEN1-2 folder to train on)")
  config = quickstart.get_config()
  config.data.root = data_root
  if manager.checkpoint_dir(workdir).is_dir():
    checkpoints = manager.Checkpoints(workdir, create=False)
    latest = checkpoints.latest_step()
    checkpoints.close()
    if latest is not None and latest >= config.num_train_steps:
      logging.info("%s holds the final checkpoint (step %d): not training", workdir, latest)
      return
  from sar2optical.training import loop  # pylint: disable=g-import-not-at-top (only --train needs the loop)
  cli.use_compilation_cache(workdir)
  loop.train(config, workdir)


def load_model(workdir: str) -> tuple[Translator, ml_collections.ConfigDict]:
  """The API's translator of the workdir's latest checkpoint, and that checkpoint's config; CheckpointError naming
  the workdir when it has none."""
  if not storage.as_path(workdir, "--model").is_dir():
    raise CheckpointError(f"{workdir}: no such workdir")
  translator = sar2optical.load(workdir)
  assert isinstance(translator.generator, TrainedGenerator)  # what a workdir loads as
  return translator, translator.generator.config


def shown_source(config: ml_collections.ConfigDict, workdir: str, data_root: str | None,
                 pairs_dir: str | None) -> tuple[sources.PairSource, str]:
  """The pairs to choose from, in name order: those under `pairs_dir`, else the test split of `workdir`'s run; and
  what they are, in words."""
  if pairs_dir:
    root = storage.as_path(pairs_dir, "--pairs")
    source = sources.FolderSource(root, pairs_lib.find_pairs(root))
    return resolve.in_name_order(source), f"--pairs: {source.description}"
  data = ml_collections.ConfigDict({**config.data.to_dict(), "root": data_root or config.data.root})
  run_data = resolve.resolve(data, workdir, seed=config.seed, record=False)
  split_file = pathlib.Path(workdir) / resolve.SPLIT_FILE
  if run_data.split is None:
    raise DataError(f"{split_file}: not found, so the run's test split is unknown; show other pairs with --pairs=DIR")
  test = run_data.source("test")
  return resolve.in_name_order(test), f"the test split of {split_file}: {len(test)} pairs in {data.root}"


def group_of(source: sources.PairSource, index: int) -> tuple[str, str]:
  """(class, scene) of a record; "" for what its name does not tell."""
  name, label = source.name_and_label(index)
  return label, pairs_lib.scene_of(posixpath.basename(name)) or ""


def share(sizes: Sequence[int], total: int) -> list[int]:
  """How many of `total` picks each group of `sizes` gets: one per group in turn, skipping full ones."""
  counts = [0] * len(sizes)
  while sum(counts) < min(total, sum(sizes)):
    for group, size in enumerate(sizes):
      if counts[group] < size and sum(counts) < total:
        counts[group] += 1
  return counts


def spread(members: Sequence[int], count: int) -> list[int]:
  """`count` of `members`, evenly through them (the middle one for 1)."""
  return [members[(2 * pick + 1) * len(members) // (2 * count)] for pick in range(count)]


def choose_rows(source: sources.PairSource, rows: int) -> list[int]:
  """`rows` indices of `source` in name order (fewer if it holds fewer): the classes share them in turn, each
  class's share goes to its scenes in turn, and each scene's picks are spread evenly through its pairs."""
  scenes_of_class: dict[str, dict[str, list[int]]] = collections.defaultdict(lambda: collections.defaultdict(list))
  for index in range(len(source)):
    label, scene = group_of(source, index)
    scenes_of_class[label][scene].append(index)
  classes = [scenes_of_class[label] for label in sorted(scenes_of_class)]
  chosen = []
  for scenes, count in zip(classes, share([sum(map(len, c.values())) for c in classes], rows), strict=True):
    members = [scenes[scene] for scene in sorted(scenes)]
    for scene_members, scene_count in zip(members, share(list(map(len, members)), count), strict=True):
      chosen += spread(scene_members, scene_count)
  return sorted(chosen)


def psnr(tile: np.ndarray, target: np.ndarray) -> float:
  """PSNR in dB of a uint8 tile against its uint8 target, data range 255: dm-pix's, as eval's metrics."""
  return float(dm_pix.psnr(jnp.asarray(tile / 255.0), jnp.asarray(target / 255.0)))


def model_record(label: str, workdir: str, step: int, config: ml_collections.ConfigDict) -> dict:
  return {"label": label, "workdir": workdir, "step": step,
          "config": {name: fields.field(config, name) for name in RECORDED_FIELDS}}


def draw(models: list[tuple[str, str]], data_root: str | None, pairs_dir: str | None, rows: int,
         output: str) -> dict:
  """Writes the figure to `output` and its sidecar beside it; returns the sidecar's content."""
  png = storage.writable_file(output, "--output")
  loaded = [load_model(workdir) for _, workdir in models]  # every workdir checked before any work
  translators, configs = [translator for translator, _ in loaded], [config for _, config in loaded]
  source, pairs_from = shown_source(configs[0], models[0][1], data_root, pairs_dir)
  if not len(source):
    raise DataError(f"no pairs to show in {source.description}")
  chosen = choose_rows(source, rows)
  pairs = [source.decode(source[index]) for index in chosen]
  tiles = [[translator.translate(pair["sar"][..., 0]) for pair in pairs] for translator in translators]
  grid_rows = [[pair["sar"], *(model_tiles[row] for model_tiles in tiles), pair["optical"]]
               for row, pair in enumerate(pairs)]
  labels = [" ".join(filter(None, group_of(source, index))) for index in chosen]
  titles = ["SAR", *(label for label, _ in models), "target"]
  storage.write_whole(png, _png_bytes(pair_grid(grid_rows, labels, titles)))
  sidecar = {
      "command": shlex.join(["python", *sys.argv]),
      "pairs_from": pairs_from,
      "psnr": "dB, each uint8 tile shown against its target, data range 255",
      "models": [model_record(label, workdir, translator.step, config)
                 for (label, workdir), (translator, config) in zip(models, loaded, strict=True)],
      "rows": [{"sar": source.name_and_label(index)[0], "class": group_of(source, index)[0],
                "scene": group_of(source, index)[1],
                "psnr": {label: round(psnr(model_tiles[row], pairs[row]["optical"]), 4)
                         for (label, _), model_tiles in zip(models, tiles, strict=True)}}
               for row, index in enumerate(chosen)],
  }
  storage.write_whole(png.with_suffix(".json"), json.dumps(sidecar, indent=2) + "\n")
  return sidecar


def _png_bytes(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.train and not FLAGS.workdir:
    raise ConfigError("--workdir: required with --train (where the quickstart config is trained)")
  models = parse_models(FLAGS.workdir, FLAGS.model)
  if FLAGS.train:
    train_quickstart(FLAGS.workdir, FLAGS.data_root)
  sidecar = draw(models, FLAGS.data_root, FLAGS.pairs, FLAGS.rows, FLAGS.output)
  for row in sidecar["rows"]:
    scores = "  ".join(f"{label} {value:.2f} dB" for label, value in row["psnr"].items())
    print(f"{row['sar']}: {scores}")
  print(f"Wrote {FLAGS.output} and {pathlib.Path(FLAGS.output).with_suffix('.json')}")


if __name__ == "__main__":
  _define_flags()
  cli.run(main)
