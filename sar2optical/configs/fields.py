"""The training config: its fields and defaults, and checks that run before anything compiles and name the field."""

from typing import Any

import ml_collections

from sar2optical.core import storage
from sar2optical.core.errors import ConfigError
from sar2optical.data import pairs as pairs_lib
from sar2optical.model import losses, networks

CHOICES = {
    "data.augment": ("none", "paper"),
    "data.fit": ("resize", "crop"),
    "data.source": ("folder", "tfds"),
    "data.tfds_config": ("pixels", "png"),
    "model.upsampling": ("none", "nearest", "bilinear"),
    "model.disc": ("patch", "pixel"),
    "model.dtype": ("float32", "bfloat16"),
    "schedule.name": ("constant", "linear_decay"),
    "loss.gan": losses.GAN_LOSSES,
    "model.disc_scales": (1, 2, 3),
    "model.disc_spectral_norm": (False, True),
    "model.init_output_mean": (False, True),
}
#: The fields that fix the state's variables: a checkpoint fits a config only if these agree.
NETWORK_FIELDS = ("model.in_channels", "model.levels", "model.upsampling", "model.disc", "model.disc_layers",
                  "model.disc_scales", "model.disc_spectral_norm", "model.ema_decay", "model.ngf")
POSITIVE_INTS = ("image_size", "batch_size", "num_train_steps", "log_every_steps", "checkpoint_every_steps",
                 "sample_every_steps", "keep_checkpoints", "model.levels", "model.disc_layers", "eval_batch_size",
                 "model.ngf", "loss.lowfreq_pool")
#: Fields that name a local file or folder (`storage.local_path`), and those that may name a gs:// one too.
PATH_FIELDS = ("data.tfds_data_dir",)
CLOUD_PATH_FIELDS = ("data.root", "data.split_file", "init_from")
#: {field: what 0 means, for the message}
NON_NEGATIVE_INTS = {"eval_every_steps": " (0: no validation)", "profile_steps": " (0: no trace)",
                     "profile_after_steps": ""}
#: Options beyond the original that only the PatchGAN has (the pixel D keeps the original's form).
PATCH_ONLY = {"model.disc_scales": 1, "model.disc_spectral_norm": False, "loss.lambda_feat_match": 0.0}


def default_config() -> ml_collections.ConfigDict:
  """The original's setup (configs/pix2pix.py): every field with its default and meaning."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # seed of the initialisation, dropout, the data order and augmentation, and the split by scene
  config.image_size = 256  # side of the square images the model trains on; a multiple of 2^L for L = `model.levels`
  config.batch_size = 32  # global, over all devices and processes
  # 87,500 × 32 = 2.8 M images: 200 epochs of the balanced split's 14,000 training pairs (the original's
  # budget); ≈ 219 epochs of the default scene split's ≈ 12,800 (0.8 of the Kaggle set's 16,000).
  config.num_train_steps = 87_500
  config.init_from = ""  # a workdir whose latest G and D start a new run (fine-tuning); a checkpoint in --workdir wins

  config.data = ml_collections.ConfigDict()
  config.data.root = ""  # required: SEN1-2 (Kaggle or original season folders) or same-name s1/+s2/ (A/+B/) folders
  config.data.scene_pattern = ""  # regex with a `scene` group, searched in SAR file names; empty: SEN1-2 names
  config.data.seasons = ""  # e.g. "spring,summer": only pairs of these seasons (SEN1-2 names); empty: all
  config.data.split_file = ""  # split.json of the original; empty: a seeded 0.8/0.1/0.1 split by scene
  config.data.source = "folder"  # folder (data.root) | tfds (a sen1_2 build: python -m sar2optical.commands.build_tfds)
  config.data.tfds_data_dir = ""  # where sen1_2 was built; empty: the TFDS default (~/tensorflow_datasets)
  config.data.tfds_config = "pixels"  # pixels (decoded uint8, fastest) | png
  # how a pair becomes image_size²: resize (the original's; its pixel is side/image_size stored pixels) | crop (a
  # random image_size window, the stored pixel); checkpoints record the pixel, and predict and eval use it
  config.data.fit = "resize"
  config.data.augment = "none"  # none | paper (resize to 286/256 of the size, random crop, random left-right flip)
  config.data.vflip = False  # random top-bottom flips (valid for nadir imagery)
  config.data.rot90 = False  # random rotations by multiples of 90°
  config.data.workers = 8  # grain worker processes decoding and augmenting (0: threads of the training process)
  config.data.skip_bad = False  # skip (and count) undecodable records instead of stopping with the file's path

  config.model = ml_collections.ConfigDict()
  config.model.in_channels = 1  # SEN1-2 SAR PNGs are single-band; 3 for the original's checkpoints
  config.model.levels = 8  # U-Net depth (at most 8); 8 is the original's at 256², the quickstart uses 6 at 64²
  config.model.upsampling = "none"  # none (ConvTranspose) | nearest | bilinear
  config.model.dropout_rate = 0.5  # dropout on the innermost min(3, levels − 1) decoder blocks (train mode only)
  config.model.disc = "patch"  # patch | pixel
  config.model.disc_layers = 3  # PatchGAN depth: 3 is the original's 70×70 PatchGAN
  config.model.dtype = "float32"  # computation dtype; bfloat16 for mixed precision (params, optimizer, losses stay float32)
  # Beyond the original (these defaults are its behaviour; see docs/few_scenes.md):
  config.model.disc_scales = 1  # PatchGANs on the input at 1, 1/2, 1/4 of its size (pix2pixHD: 2 or 3)
  config.model.disc_spectral_norm = False  # spectral normalisation of every PatchGAN conv (Miyato et al. 2018)
  config.model.ema_decay = 0.0  # > 0: eval/predict/export use an EMA of G's parameters and BatchNorm statistics
  # G's base width: encoder widths min(ngf·2^i, 8·ngf), the last decoder block ngf (64: the original's); other
  # widths have no PyTorch equivalent (no --format=torch export)
  config.model.ngf = 64
  # True: a new run's G outputs the training optical images' mean colour at first (head conv kernel 0, bias atanh of
  # that colour, from a seeded sample of at most 1,000 training pairs), so that early training only adds structure
  config.model.init_output_mean = False

  config.loss = ml_collections.ConfigDict()
  config.loss.lambda_l1 = 100.0  # weight of the L1 term in the generator's loss
  config.loss.gan = "bce"  # bce (the original's) | lsgan | hinge
  config.loss.lambda_feat_match = 0.0  # weight of pix2pixHD's discriminator feature-matching loss (it uses 10)
  # weight of G's adversarial loss; 0 (and lambda_feat_match 0): pure regression, the pix2pix paper's "L1 only"
  # (D is never run, its variables stay as initialised)
  config.loss.lambda_gan = 1.0
  # weight of the low-frequency L2, mean((avgpool(fake) − avgpool(target))²): pulls local means towards the target's
  # (which PSNR rewards; L1's optimum is the median)
  config.loss.lambda_lowfreq = 0.0
  config.loss.lowfreq_pool = 8  # window and stride of that pooling; with lambda_lowfreq > 0, it must divide image_size

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 2e-4  # Adam's learning rate, one Adam per network
  config.optimizer.b1 = 0.5  # Adam's β1
  config.optimizer.b2 = 0.999  # Adam's β2

  config.schedule = ml_collections.ConfigDict()
  config.schedule.name = "constant"  # constant | linear_decay (constant, then linearly to 0: the paper's)
  config.schedule.decay_start_fraction = 0.5  # for linear_decay: where the decay starts

  # mean losses, steps/s, images/s and ETA to the log, metrics.jsonl and TensorBoard every N steps
  config.log_every_steps = 50
  # a checkpoint every N steps (also after each validation, at the end, on SIGTERM/SIGINT)
  config.checkpoint_every_steps = 1000
  config.eval_every_steps = 1000  # score the validation split (eval mode) and keep the best checkpoint; 0: never
  config.eval_batch_size = 16  # batch size of the validation during training
  config.sample_every_steps = 1000  # a SAR | generated | target grid in WORKDIR/samples/ every N steps
  config.keep_checkpoints = 3  # the last N checkpoints are kept, and also the best by validation PSNR
  # > 0: a profiler trace of N steps into WORKDIR/tensorboard/plugins/profile/ (docs/usage/train.md)
  config.profile_steps = 0
  config.profile_after_steps = 2  # steps of the run before the traced ones (the first step compiles)
  return config


def with_defaults(saved: dict[str, Any]) -> ml_collections.ConfigDict:
  """The config `saved` (a dict), with the default of every field it lacks (one written by an earlier version)."""
  config = default_config()
  config.update(saved)
  return config


def field(config: ml_collections.ConfigDict, name: str):
  """The value of a dotted field; ConfigError naming it when absent."""
  value = config
  for part in name.split("."):
    if part not in value:
      raise ConfigError(f"config.{name}: missing field")
    value = value[part]
  return value


def changes(old: ml_collections.ConfigDict, new: ml_collections.ConfigDict) -> dict[str, tuple]:
  """{dotted field: (old value, new value)} for every field that differs (absent: None)."""
  def flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
      out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out
  before, after = flat(old.to_dict()), flat(new.to_dict())
  return {name: (before.get(name), after.get(name)) for name in sorted(before.keys() | after.keys())
          if before.get(name) != after.get(name)}


def check_networks_fit(saved: ml_collections.ConfigDict, config: ml_collections.ConfigDict, networks: str) -> None:
  """ConfigError naming each of NETWORK_FIELDS that differs between `saved` and `config`.

  `networks` says whose they are, e.g. "the networks at step 5 of runs/a".
  """
  differing = {name: values for name, values in changes(saved, config).items() if name in NETWORK_FIELDS}
  if differing:
    raise ConfigError(f"{networks} do not fit this config: " + "; ".join(
        f"config.{name} is {old!r} there, {new!r} here" for name, (old, new) in differing.items()))


def validate(config: ml_collections.ConfigDict, num_data_shards: int = 1, *, require_data_root: bool = True) -> None:
  """Raises ConfigError for the first bad field.

  `num_data_shards`: devices the batch is split over. `require_data_root=False` accepts an empty
  `data.root`, for a workdir that only serves inference (a converted PyTorch model).
  """
  for name in POSITIVE_INTS:
    value = field(config, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ConfigError(f"config.{name}: must be a positive integer, got {value!r}")
  for name, zero_means in NON_NEGATIVE_INTS.items():
    value = field(config, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
      raise ConfigError(f"config.{name}: must be a non-negative integer{zero_means}, got {value!r}")
  for name, choices in CHOICES.items():
    value = field(config, name)
    if value not in choices:
      raise ConfigError(f"config.{name}: must be one of {', '.join(map(str, choices))}; got {value!r}")
  if require_data_root and field(config, "data.source") == "folder" and not field(config, "data.root"):
    raise ConfigError("config.data.root: not set; point it at a SEN1-2 folder (Kaggle layout <class>/s1, <class>/s2),"
                      " e.g. --config.data.root=/path/to/v_2")
  pairs_lib.compile_scene_pattern(field(config, "data.scene_pattern"), "config.data.scene_pattern")
  pairs_lib.parse_seasons(field(config, "data.seasons"), "config.data.seasons")
  workers = field(config, "data.workers")
  if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
    raise ConfigError(f"config.data.workers: must be a non-negative integer (grain worker processes), got {workers!r}")
  if not isinstance(field(config, "init_from"), str):
    raise ConfigError(f"config.init_from: must be a workdir path (or empty), got {config.init_from!r}")
  for name in PATH_FIELDS + CLOUD_PATH_FIELDS:
    if field(config, name):
      check = storage.as_path if name in CLOUD_PATH_FIELDS else storage.local_path
      check(field(config, name), f"config.{name}:")
  levels = config.model.levels
  if levels > networks.MAX_LEVELS:
    raise ConfigError(f"config.model.levels: at most {networks.MAX_LEVELS}, got {levels}")
  if config.image_size % 2**levels:
    raise ConfigError(f"config.image_size: {config.image_size} is not a multiple of 2**model.levels = {2**levels}")
  if config.model.disc == "patch" and networks.patch_logits_size(config.image_size, config.model.disc_layers) < 1:
    raise ConfigError(f"config.model.disc_layers: {config.model.disc_layers} layers leave no PatchGAN output at "
                      f"image_size {config.image_size}")
  if config.model.in_channels not in (1, 3):
    raise ConfigError(f"config.model.in_channels: must be 1 (SEN1-2 SAR) or 3 (the original's checkpoints); "
                      f"got {config.model.in_channels!r}")
  if not 0.0 <= config.model.dropout_rate < 1.0:
    raise ConfigError(f"config.model.dropout_rate: must be in [0, 1), got {config.model.dropout_rate!r}")
  if config.batch_size < 2:
    raise ConfigError(f"config.batch_size: must be at least 2 (BatchNorm at the U-Net bottleneck); got {config.batch_size}")
  if config.batch_size % num_data_shards:
    raise ConfigError(f"config.batch_size: {config.batch_size} is not divisible by the {num_data_shards} devices "
                      "the batch is sharded over")
  if config.model.disc != "patch":
    for name, original in PATCH_ONLY.items():
      if field(config, name) != original:
        raise ConfigError(f"config.{name}: needs model.disc=patch (the pixel discriminator has no such option); "
                          f"got {field(config, name)!r} with model.disc={config.model.disc!r}")
  smallest = config.image_size // 2**(config.model.disc_scales - 1)
  if config.model.disc == "patch" and networks.patch_logits_size(smallest, config.model.disc_layers) < 1:
    raise ConfigError(f"config.model.disc_scales: {config.model.disc_scales} scales leave the smallest PatchGAN "
                      f"({smallest}² input, {config.model.disc_layers} layers) no output")
  if not 0.0 <= config.model.ema_decay < 1.0:
    raise ConfigError(f"config.model.ema_decay: must be in [0, 1) (0: no average), got {config.model.ema_decay!r}")
  for name in ("optimizer.learning_rate", "loss.lambda_l1", "loss.lambda_feat_match", "loss.lambda_gan",
               "loss.lambda_lowfreq"):
    if not field(config, name) >= 0:
      raise ConfigError(f"config.{name}: must be non-negative, got {field(config, name)!r}")
  if config.loss.lambda_lowfreq and config.image_size % config.loss.lowfreq_pool:
    raise ConfigError(f"config.loss.lowfreq_pool: image_size {config.image_size} is not a multiple of "
                      f"{config.loss.lowfreq_pool} (needed with loss.lambda_lowfreq > 0)")
  for name in ("optimizer.b1", "optimizer.b2"):
    if not 0.0 <= field(config, name) < 1.0:
      raise ConfigError(f"config.{name}: must be in [0, 1), got {field(config, name)!r}")
  if not 0.0 <= config.schedule.decay_start_fraction <= 1.0:
    raise ConfigError(f"config.schedule.decay_start_fraction: must be in [0, 1], "
                      f"got {config.schedule.decay_start_fraction!r}")
