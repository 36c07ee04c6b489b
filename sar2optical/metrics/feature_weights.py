"""The weight files of the feature metrics: found (flag, environment variable, installed lpips package),
checked (SHA-256, then the state_dict's names and shapes) and mapped onto the Flax networks.

Nothing is ever downloaded: a missing file is a one-line error saying where it is published and its
SHA-256. A file's digest must be the published file's, or the one the user pins (`--*_sha256`) to
score with other weights on purpose; either way the digest is recorded with the results. The files
are read by the restricted `.pth` reader (no torch, no pickled code run).
"""

import dataclasses
import hashlib
import importlib.util
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from sar2optical.core.errors import CheckpointError
from sar2optical.core.pth_files import load_state_dict

BATCHNORM_EPS = 1e-3  # torchvision's BasicConv2d


@dataclasses.dataclass(frozen=True)
class WeightFile:
  """A published weights file: what it holds, where it is published, its SHA-256 (when established)."""
  what: str
  file_name: str
  url: str
  sha256: str | None  # None: not established; `sha256_prefix` (torch.hub's file-name convention) is checked
  sha256_prefix: str
  env: str

  def expected(self) -> str:
    return (f"SHA-256 {self.sha256}" if self.sha256 else
            f"a SHA-256 starting {self.sha256_prefix} (torch.hub's file-name convention; the full digest is not "
            "established here)")


FID_INCEPTION = WeightFile(
    "pytorch-fid's FID Inception-v3 (TF 2015-12-05 weights)", "pt_inception-2015-12-05-6726825d.pth",
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2", "6726825d", "SAR2OPTICAL_FID_WEIGHTS")
TORCHVISION_INCEPTION = WeightFile(
    "torchvision's ImageNet Inception-v3", "inception_v3_google-0cc3c7bd.pth",
    "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth", None, "0cc3c7bd",
    "SAR2OPTICAL_FID_TORCHVISION_WEIGHTS")
LPIPS_LINEAR = {
    "alex": WeightFile("lpips v0.1 linear layers for AlexNet", "alex.pth",
                       "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
                       "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", "df73285e",
                       "SAR2OPTICAL_LPIPS_WEIGHTS"),
    "vgg": WeightFile("lpips v0.1 linear layers for VGG16", "vgg.pth",
                      "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
                      "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868", "a78928a0",
                      "SAR2OPTICAL_LPIPS_WEIGHTS"),
}
LPIPS_BACKBONE = {
    "alex": WeightFile("torchvision's ImageNet AlexNet (LPIPS backbone)", "alexnet-owt-7be5be79.pth",
                       "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", None, "7be5be79",
                       "SAR2OPTICAL_LPIPS_BACKBONE_WEIGHTS"),
    "vgg": WeightFile("torchvision's ImageNet VGG16 (LPIPS backbone)", "vgg16-397923af.pth",
                      "https://download.pytorch.org/models/vgg16-397923af.pth", None, "397923af",
                      "SAR2OPTICAL_LPIPS_BACKBONE_WEIGHTS"),
}


@dataclasses.dataclass(frozen=True)
class LoadedWeights:
  """A checked weights file: its path, SHA-256, whether it is the published file, and its state_dict."""
  path: pathlib.Path
  sha256: str
  published: bool
  state_dict: dict[str, np.ndarray]

  def record(self) -> dict:
    return {"file": str(self.path), "sha256": self.sha256, "published_file": self.published}


def sha256(path: pathlib.Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as file:
    for block in iter(lambda: file.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def installed_lpips_file(net: str) -> pathlib.Path | None:
  """The installed lpips package's `weights/v0.1/<net>.pth` (found without importing lpips), if there."""
  spec = importlib.util.find_spec("lpips")
  if spec is None or not spec.submodule_search_locations:
    return None
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "weights" / "v0.1" / f"{net}.pth"
  return path if path.is_file() else None


def locate(spec: WeightFile, flag: str, given: str | None, default: pathlib.Path | None = None) -> pathlib.Path:
  """The file: `given` (the flag), else $spec.env, else `default`; CheckpointError saying where it is published."""
  value = given or os.environ.get(spec.env) or (str(default) if default else "")
  if not value:
    raise CheckpointError(f"{spec.what}: no weights file; pass {flag}=PATH or set {spec.env} to a local copy of "
                          f"{spec.file_name} (published at {spec.url}, never downloaded by sar2optical; "
                          f"expected {spec.expected()})")
  path = pathlib.Path(value).expanduser()
  if not path.is_file():
    source = flag if given else spec.env if os.environ.get(spec.env) else "default"
    raise CheckpointError(f"{path}: {spec.what} not found (from {source}); "
                          f"{spec.file_name} is published at {spec.url} (never downloaded by sar2optical); "
                          f"expected {spec.expected()}")
  return path


def load(spec: WeightFile, path: pathlib.Path, pinned_sha256: str | None = None) -> LoadedWeights:
  """The state_dict of `path` once its SHA-256 is the published file's (or `pinned_sha256`); else CheckpointError."""
  digest = sha256(path)
  published = digest == spec.sha256 if spec.sha256 else digest.startswith(spec.sha256_prefix)
  if pinned_sha256:
    if digest != pinned_sha256.lower():
      raise CheckpointError(f"{path}: SHA-256 {digest}, not the pinned {pinned_sha256.lower()}")
  elif not published:
    raise CheckpointError(f"{path}: SHA-256 {digest} is not that of {spec.what} ({spec.file_name}, expected "
                          f"{spec.expected()}); pass the published file, or pin this file's digest to score with "
                          "other weights on purpose")
  return LoadedWeights(path, digest, published, load_state_dict(path))


def require(state_dict: Mapping[str, np.ndarray], shapes: Mapping[str, tuple[int, ...]], path: pathlib.Path,
            what: str) -> None:
  """CheckpointError naming the file when a needed name is missing or has another shape (extra names are ignored)."""
  missing = [name for name in shapes if name not in state_dict]
  if missing:
    raise CheckpointError(f"{path}: not {what}: {len(missing)} of its {len(shapes)} expected names are missing "
                          f"(e.g. {', '.join(missing[:3])})")
  wrong = [f"{name} {tuple(state_dict[name].shape)} ≠ {shape}" for name, shape in shapes.items()
           if tuple(state_dict[name].shape) != tuple(shape)]
  if wrong:
    raise CheckpointError(f"{path}: not {what}: shapes differ: {'; '.join(wrong[:3])}")


def _flat(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
  out = {}
  for key, value in tree.items():
    out.update(_flat(value, (*prefix, key)) if isinstance(value, Mapping) else {(*prefix, key): value})
  return out


def _nest(flat: Mapping[tuple[str, ...], np.ndarray]) -> dict:
  tree: dict = {}
  for path, value in flat.items():
    node = tree
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = value
  return tree


def inception_variables(loaded: LoadedWeights, template: Mapping[str, Any], what: str) -> dict:
  """Flax params of `inception.InceptionV3` from a torchvision-layout state_dict, BatchNorm folded into each conv.

  Each conv `P` of the template reads `P.conv.weight` (OIHW) and `P.bn.{weight,bias,running_mean,running_var}`;
  `fc` reads `fc.weight`/`fc.bias`. Folding is done in float64, then cast to float32.
  """
  flat = _flat(template)
  shapes = {}
  for path, leaf in flat.items():
    prefix = ".".join(path[:-1])
    if path[0] == "fc":
      shapes[f"fc.{'weight' if path[-1] == 'kernel' else 'bias'}"] = leaf.shape[::-1]
    elif path[-1] == "kernel":
      kh, kw, cin, cout = leaf.shape
      shapes[f"{prefix}.conv.weight"] = (cout, cin, kh, kw)
      shapes.update({f"{prefix}.bn.{name}": (cout,) for name in ("weight", "bias", "running_mean", "running_var")})
  sd = loaded.state_dict
  require(sd, shapes, loaded.path, what)
  params = {}
  for path in flat:
    prefix = ".".join(path[:-1])
    if path[0] == "fc":
      params[path] = sd["fc.weight"].T if path[-1] == "kernel" else sd["fc.bias"]
      continue
    scale = sd[f"{prefix}.bn.weight"].astype(np.float64) / np.sqrt(
        sd[f"{prefix}.bn.running_var"].astype(np.float64) + BATCHNORM_EPS)
    if path[-1] == "kernel":
      params[path] = sd[f"{prefix}.conv.weight"].astype(np.float64).transpose(2, 3, 1, 0) * scale
    else:
      params[path] = sd[f"{prefix}.bn.bias"] - sd[f"{prefix}.bn.running_mean"].astype(np.float64) * scale
  return {"params": _nest({path: np.asarray(value, np.float32) for path, value in params.items()})}


def lpips_variables(backbone: LoadedWeights, linear: LoadedWeights, template: Mapping[str, Any], net: str) -> dict:
  """Flax params of `lpips.LPIPS`: `features_N` from torchvision's `features.N.{weight,bias}`, `linK` from `linK.model.1.weight`."""
  flat = _flat(template)
  backbone_shapes, linear_shapes = {}, {}
  for path, leaf in flat.items():
    if path[0].startswith("features_"):
      name = f"features.{path[0].removeprefix('features_')}"
      backbone_shapes[f"{name}.{'weight' if path[-1] == 'kernel' else 'bias'}"] = (
          (leaf.shape[3], leaf.shape[2], *leaf.shape[:2]) if path[-1] == "kernel" else leaf.shape)
    else:
      linear_shapes[f"{path[0]}.model.1.weight"] = (1, leaf.shape[0], 1, 1)
  require(backbone.state_dict, backbone_shapes, backbone.path, LPIPS_BACKBONE[net].what)
  require(linear.state_dict, linear_shapes, linear.path, LPIPS_LINEAR[net].what)
  params = {}
  for path in flat:
    if path[0].startswith("features_"):
      name = f"features.{path[0].removeprefix('features_')}"
      value = backbone.state_dict[f"{name}.{'weight' if path[-1] == 'kernel' else 'bias'}"]
      params[path] = value.transpose(2, 3, 1, 0) if path[-1] == "kernel" else value
    else:
      params[path] = linear.state_dict[f"{path[0]}.model.1.weight"].reshape(-1)
  return {"params": _nest({path: np.asarray(value, np.float32) for path, value in params.items()})}


def abstract_params(module: Any, *inputs: jax.ShapeDtypeStruct) -> dict:
  """The module's params as shapes only (no compute): the template the state_dicts are mapped onto."""
  return jax.eval_shape(module.init, jax.random.PRNGKey(0), *inputs)["params"]


def fid_network(variant: str, given: str | None, pinned_sha256: str | None) -> tuple[Any, dict]:
  """The checked Inception of `variant` and the record of its weights (file, SHA-256, whether published)."""
  from sar2optical.metrics import inception  # pylint: disable=g-import-not-at-top (flax only when asked)
  spec = FID_INCEPTION if variant == "standard" else TORCHVISION_INCEPTION
  loaded = load(spec, locate(spec, "--fid_weights", given), pinned_sha256)
  template = abstract_params(inception.InceptionV3(variant), jax.ShapeDtypeStruct((1, 299, 299, 3), np.float32))
  variables = inception_variables(loaded, template, spec.what)
  return inception.InceptionFeatures(variant, variables), loaded.record()


def lpips_network(net: str, given: str | None, pinned_sha256: str | None, backbone_given: str | None,
                  backbone_pinned_sha256: str | None) -> tuple[Any, dict]:
  """The checked LPIPS of `net` (linear layers default to the installed lpips package's) and its weights' records."""
  from sar2optical.metrics import lpips
  linear_spec, backbone_spec = LPIPS_LINEAR[net], LPIPS_BACKBONE[net]
  linear = load(linear_spec, locate(linear_spec, "--lpips_weights", given, installed_lpips_file(net)), pinned_sha256)
  backbone = load(backbone_spec, locate(backbone_spec, "--lpips_backbone_weights", backbone_given),
                  backbone_pinned_sha256)
  image = jax.ShapeDtypeStruct((1, 64, 64, 3), np.float32)
  variables = lpips_variables(backbone, linear, abstract_params(lpips.LPIPS(net), image, image), net)
  return lpips.LpipsDistance(net, variables), {"linear": linear.record(), "backbone": backbone.record()}
