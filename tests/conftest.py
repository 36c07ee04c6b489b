"""Shared test helpers: the real SEN1-2 sample beside the repository."""

import hashlib
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from sar2optical.configs import quickstart
from sar2optical.data import images, synthetic
from sar2optical.data.pairs import Pair

REPO = pathlib.Path(__file__).resolve().parents[1]

# Real SEN1-2 pairs in ../shared/data/sen1-2 beside the repository root (not in the repo).
SEN12_ROOT = pathlib.Path(__file__).resolve().parents[2] / "shared/data/sen1-2"

requires_sen12 = pytest.mark.skipif(
    not SEN12_ROOT.is_dir(), reason=f"real SEN1-2 sample not found at {SEN12_ROOT}")

# The PyTorch reference model (the original's architecture and state_dict names).
TORCH_REFERENCE = SEN12_ROOT.parents[1] / "bench" / "torch_seed_pix2pix.py"


@pytest.fixture(scope="session")
def torch_reference():
  """The module ../shared/bench/torch_seed_pix2pix.py; skips without torch or the file."""
  pytest.importorskip("torch", reason="torch (optional test dependency) is not installed")
  if not TORCH_REFERENCE.is_file():
    pytest.skip(f"PyTorch reference not found at {TORCH_REFERENCE}")
  import importlib.util
  spec = importlib.util.spec_from_file_location("torch_seed_pix2pix", TORCH_REFERENCE)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def spread_variables(variables, seed: int):
  """Flax `variables` ({"params", "batch_stats"}) redrawn so that every one matters and outputs spread.

  Conv kernels N(0, 1/fan-in) (not saturated), BatchNorm scales U(0.5, 1.5), shifts U(-0.5, 0.5),
  running means U(-0.5, 0.5) and variances U(0.5, 2); other biases U(-0.1, 0.1). float32, on the host.
  """
  import flax  # pylint: disable=g-import-not-at-top (keeps collection light)
  rng = np.random.default_rng(seed)
  ranges = {"scale": (0.5, 1.5), "bias": (-0.5, 0.5), "mean": (-0.5, 0.5), "var": (0.5, 2.0)}
  def redraw(path, leaf):
    if path[-1] == "kernel":
      return (rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape) / leaf.shape[-1])).astype(np.float32)
    low, high = ranges[path[-1]] if path[-2] == "norm" else (-0.1, 0.1)
    return rng.uniform(low, high, leaf.shape).astype(np.float32)
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables))
  return flax.traverse_util.unflatten_dict({path: redraw(path, leaf) for path, leaf in flat.items()})


def spread_generator(config, seed: int = 0):
  """An eval-mode TrainedGenerator (step 0) of `config` in memory, its variables by `spread_variables`."""
  import jax  # pylint: disable=g-import-not-at-top (keeps collection light)
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from sar2optical.inference.restore import TrainedGenerator  # pylint: disable=g-import-not-at-top
  from sar2optical.model.pixels import PixelSpec  # pylint: disable=g-import-not-at-top
  from sar2optical.training.recipe import make_recipe  # pylint: disable=g-import-not-at-top
  recipe = make_recipe(config, PixelSpec())
  sar = jnp.zeros((1, config.image_size, config.image_size, config.model.in_channels))
  shapes = jax.eval_shape(lambda: recipe.generator.init(jax.random.PRNGKey(0), sar, train=False))
  variables = jax.device_put(spread_variables(shapes, seed))
  return TrainedGenerator(config, recipe.pixels, 0, recipe.generator, variables["params"], variables["batch_stats"])


def spread_state(config, seed: int = 0):
  """(recipe, a TrainState of `config`): G's and D's variables by `spread_variables`, the rest zeros (step 0).

  Built from the state's shapes, without running an initialiser: seconds faster per config on the CPU.
  """
  import jax  # pylint: disable=g-import-not-at-top (keeps collection light)
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from sar2optical.model.pixels import PixelSpec  # pylint: disable=g-import-not-at-top
  from sar2optical.training.mesh import make_mesh  # pylint: disable=g-import-not-at-top
  from sar2optical.training.recipe import make_recipe  # pylint: disable=g-import-not-at-top
  from sar2optical.training.state import abstract_state  # pylint: disable=g-import-not-at-top
  recipe = make_recipe(config, PixelSpec())
  abstract = abstract_state(recipe, make_mesh(), config.image_size, config.model.in_channels)
  state = jax.tree.map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), abstract)
  g = jax.device_put(spread_variables({"params": abstract.g_params, "batch_stats": abstract.g_stats}, seed))
  d = jax.device_put(spread_variables({"params": abstract.d_params, "batch_stats": abstract.d_stats}, seed + 1))
  return recipe, state.replace(g_params=g["params"], g_stats=g["batch_stats"], d_params=d["params"],
                               d_stats=d["batch_stats"])


def make_workdir(workdir: pathlib.Path, in_channels: int = 1, upsampling: str = "none", step: int = 5,
                 **overrides) -> pathlib.Path:
  """A workdir with one checkpoint, at `step`, of `tiny_config` (a 3-level U-Net at 32²) with `spread_state`'s networks."""
  from sar2optical.checkpoints import manager
  from sar2optical.checkpoints.metadata import make_metadata
  from sar2optical.model.pixels import PixelSpec  # pylint: disable=g-import-not-at-top
  config = tiny_config("unused", **{"model.in_channels": in_channels, "model.upsampling": upsampling, **overrides})
  _, state = spread_state(config)
  checkpoints = manager.Checkpoints(workdir)
  checkpoints.save(step, state, None, make_metadata(config, PixelSpec(), step))
  checkpoints.wait()
  checkpoints.close()
  return workdir


def tiny_config(root, **overrides):
  """The quickstart config shrunk to a 3-level U-Net at 32², batch 2: compiles in seconds.

  Overrides name dotted fields: `tiny_config(root, **{"model.levels": 4}, num_train_steps=3)`.
  """
  config = quickstart.get_config()
  config.data.root = str(root)
  config.image_size = 32
  config.batch_size = 2
  config.model.levels = 3
  for name, value in overrides.items():
    section, _, field = name.rpartition(".")
    (config[section] if section else config)[field] = value
  return config


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> pathlib.Path:
  """A small synthetic SEN1-2-like set (6 pairs per class, 32²), made once per test session."""
  root = tmp_path_factory.mktemp("demo")
  synthetic.generate(root, pairs_per_class=6, size=32, seed=0)
  return root


def load_pair(root: pathlib.Path, pair: Pair, image_size: int | None, in_channels: int) -> dict[str, np.ndarray]:
  """{"sar": uint8 (S, S, in_channels), "optical": uint8 (S, S, 3)} of `pair` under `root`, S = image_size.

  The pipeline's decoding, checks and resizing without augmentation; None keeps the stored size,
  in_channels 3 repeats the SAR band (as the original PyTorch checkpoints expect).
  """
  sar, optical = root / pair.s1, root / pair.s2
  stored = images.check_pair(images.load_image(sar, "L", None), images.load_image(optical, "RGB", None), str(sar),
                             str(optical))
  fitted = {key: image if image_size is None else images.resize(image, image_size) for key, image in stored.items()}
  return {"sar": images.repeat_band(fitted["sar"], in_channels), "optical": fitted["optical"]}


def torch_state_dict(module) -> dict[str, np.ndarray]:
  return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def randomise_running_stats(torch, *modules) -> None:
  """Running statistics far from their initial values, so that a converter ignoring them fails."""
  for module in modules:
    for m in module.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.uniform_(-0.5, 0.5)
        m.running_var.uniform_(0.5, 2.0)


def nhwc(tensor) -> np.ndarray:
  return tensor.detach().numpy().transpose(0, 2, 3, 1)


@pytest.fixture(scope="session")
def tiny_workdir(demo_root, tmp_path_factory) -> pathlib.Path:
  """A real workdir: a 3-level U-Net at 32² trained for 2 steps on the demo set, checkpoints at 1 and 2."""
  from sar2optical.training import loop  # pylint: disable=g-import-not-at-top (keeps collection light)
  workdir = tmp_path_factory.mktemp("run")
  loop.train(tiny_config(demo_root, num_train_steps=2, checkpoint_every_steps=1, log_every_steps=1,
                            sample_every_steps=2), workdir)
  return workdir


def saved_state(workdir: pathlib.Path):
  """The latest saved TrainState of `workdir` on the host, restored with the config saved beside it."""
  import jax  # pylint: disable=g-import-not-at-top (keeps collection light)

  from sar2optical.checkpoints import manager
  from sar2optical.checkpoints.metadata import config_from_metadata
  from sar2optical.model.pixels import PixelSpec  # pylint: disable=g-import-not-at-top
  from sar2optical.training.mesh import make_mesh  # pylint: disable=g-import-not-at-top
  from sar2optical.training.recipe import make_recipe  # pylint: disable=g-import-not-at-top
  from sar2optical.training.state import abstract_state  # pylint: disable=g-import-not-at-top
  checkpoints = manager.Checkpoints(workdir, create=False)
  try:
    step = checkpoints.latest_step()
    config = config_from_metadata(checkpoints.metadata(step))
    model = make_recipe(config, PixelSpec())
    abstract = abstract_state(model, make_mesh(), config.image_size, config.model.in_channels)
    return jax.device_get(checkpoints.restore(step, abstract))
  finally:
    checkpoints.close()


def file_digests(folder: pathlib.Path) -> dict[str, str]:
  """{path relative to `folder`: SHA-256} of every file below it: equal digests, nothing changed or went."""
  return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
          for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="session")
def random_feature_weights(tmp_path_factory) -> dict[str, tuple[pathlib.Path, str]]:
  """Random variance-preserving weight files: {"inception": pytorch-fid's names, "alexnet": torchvision's} → (path, SHA-256).

  Kaiming-normal convs, BatchNorm the identity (scale 1, shift 0, running mean 0, variance 1), so the
  features vary from image to image. Skips without torch/torchvision (test dependencies).
  """
  torch = pytest.importorskip("torch", reason="torch (optional test dependency) is not installed")
  torchvision = pytest.importorskip("torchvision", reason="torchvision (test dependency) is not installed")
  generator = torch.Generator().manual_seed(0)
  networks = {"inception": torchvision.models.inception_v3(weights=None, num_classes=1008, aux_logits=False,
                                                           init_weights=False),
              "alexnet": torchvision.models.alexnet(weights=None)}
  directory = tmp_path_factory.mktemp("feature_weights")
  files = {}
  with torch.no_grad():
    for name, network in networks.items():
      for m in network.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
          m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * (2.0 / m.weight[0].numel()) ** 0.5)
          if m.bias is not None:
            m.bias.zero_()
        elif isinstance(m, torch.nn.BatchNorm2d):
          m.reset_running_stats()
          m.weight.fill_(1)
          m.bias.zero_()
      torch.save(network.state_dict(), directory / f"{name}.pth")
      files[name] = (directory / f"{name}.pth", hashlib.sha256((directory / f"{name}.pth").read_bytes()).hexdigest())
  return files


TRAIN_STEPS = 8


def train_command(workdir: pathlib.Path, root: pathlib.Path, *overrides: str) -> list[str]:
  """train.py on the tiny model (3 levels, 32², batch 2), checkpoints every 2 steps, a log line per step."""
  return [sys.executable, "train.py", "--config=configs/quickstart.py", f"--workdir={workdir}",
          f"--config.data.root={root}", "--config.image_size=32", "--config.batch_size=2", "--config.model.levels=3",
          f"--config.num_train_steps={TRAIN_STEPS}", "--config.checkpoint_every_steps=2", "--config.log_every_steps=1",
          "--config.sample_every_steps=100", "--config.eval_every_steps=0", *overrides]


def start(args: list[str], **env: str) -> subprocess.Popen:
  """`args` run from the repository on the CPU; stderr piped (as text), stdout dropped."""
  return subprocess.Popen(args, cwd=REPO, env={**os.environ, "JAX_PLATFORMS": "cpu", **env},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> tuple[int, str]:
  """(exit status, the rest of stderr) of `process` once it ends."""
  _, rest = process.communicate(timeout=600)
  return process.returncode, rest


@pytest.fixture(scope="session")
def straight_run(demo_root, tmp_path_factory) -> pathlib.Path:
  """An uninterrupted `train_command` run, which the interrupted ones must reproduce bit for bit."""
  workdir = tmp_path_factory.mktemp("straight")
  status, log = finish(start(train_command(workdir, demo_root)))
  assert status == 0, log[-3000:]
  return workdir
