"""FID, KID and LPIPS equal to the reference implementations (pytorch-fid, torch-fidelity, lpips) on real pairs.

The references run with the same random weights as ours, made variance-preserving (Kaiming-normal
convs, BatchNorm the identity: conftest's `random_feature_weights`) so that features differ between images and the FIDs compared are large
(a test with torchvision's default init would compare near-constant features: FID ≈ 1e-13).
Nothing is downloaded: pytorch-fid's weight fetch is handed our state_dict.
"""

import hashlib
import pathlib

import numpy as np
import pytest
from conftest import SEN12_ROOT, requires_sen12
from PIL import Image

from sar2optical.metrics import distances, feature_weights

pytestmark = requires_sen12


def real_optical(label: str, count: int, size: int | None = None) -> np.ndarray:
  """The first `count` s2 images of a class of the shared sample, uint8 NHWC (resized with Pillow to `size`)."""
  paths = sorted((SEN12_ROOT / label / "s2").glob("*.png"))[:count]
  images = [Image.open(p).convert("RGB") for p in paths]
  if size:
    images = [image.resize((size, size), Image.BILINEAR) for image in images]
  return np.stack([np.asarray(image) for image in images])


def variance_preserving(torch, module, seed: int) -> None:
  """Kaiming-normal conv/linear weights, small biases, BatchNorm scale ≈ 1 and shift ≈ 0 with running stats to match."""
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in module.modules():
      if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
        fan_in = m.weight[0].numel()
        m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
        if m.bias is not None:
          m.bias.copy_(torch.randn(m.bias.shape, generator=generator) * 0.05)
      elif isinstance(m, torch.nn.BatchNorm2d):
        m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=generator))
        m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=generator))
        m.running_mean.copy_(0.05 * torch.randn(m.running_mean.shape, generator=generator))
        m.running_var.copy_(1 + 0.2 * torch.rand(m.running_var.shape, generator=generator))


def save(torch, state_dict, path: pathlib.Path) -> str:
  torch.save(state_dict, path)
  return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def fid_reference(random_feature_weights):
  """pytorch-fid's InceptionV3([3]) with the random variance-preserving weights of `random_feature_weights`."""
  torch = pytest.importorskip("torch", reason="torch (optional test dependency) is not installed")
  fid_inception = pytest.importorskip("pytorch_fid.inception", reason="pytorch-fid (test dependency) is not installed")
  torch.set_num_threads(2)
  path, digest = random_feature_weights["inception"]
  state_dict = torch.load(path)  # torchvision's Inception names: the FID blocks have the same parameters
  patch = pytest.MonkeyPatch()
  patch.setattr(fid_inception, "load_state_dict_from_url", lambda *args, **kwargs: state_dict)
  model = fid_inception.InceptionV3([3]).eval()
  patch.undo()
  return torch, model, path, digest


def reference_features(torch, model, images: np.ndarray) -> np.ndarray:
  """pytorch-fid's features of uint8 NHWC images, read as its ImagePathDataset does (ToTensor: /255)."""
  with torch.no_grad():
    batch = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    return model(batch)[0].squeeze(3).squeeze(2).numpy()


@pytest.fixture(scope="module")
def features(fid_reference):
  """Ours and pytorch-fid's features of 16 agri and 16 urban optical images (256², real)."""
  torch, model, path, digest = fid_reference
  network, record = feature_weights.fid_network("standard", str(path), digest)
  assert record["sha256"] == digest and not record["published_file"]
  images = {label: real_optical(label, 16) for label in ("agri", "urban")}
  ours = {label: np.concatenate([np.asarray(network(images[label][i:i + 8])) for i in (0, 8)])
          for label in images}
  theirs = {label: reference_features(torch, model, images[label]) for label in images}
  return ours, theirs


def test_inception_features_equal_pytorch_fid(features):
  ours, theirs = features
  for label in ours:
    relative = np.max(np.abs(ours[label] - theirs[label])) / np.max(np.abs(theirs[label]))
    print(f"{label}: max relative feature difference {relative:.2e}")
    assert relative < 1e-4
    assert np.std(theirs[label], axis=0).mean() > 1e-2 * np.abs(theirs[label]).mean()  # features vary by image


def test_fid_and_kid_equal_the_references(features):
  fid_score = pytest.importorskip("pytorch_fid.fid_score", reason="pytorch-fid (test dependency) is not installed")
  metric_kid = pytest.importorskip("torch_fidelity.metric_kid", reason="torch-fidelity is not installed")
  import torch  # pylint: disable=g-import-not-at-top (present: the features fixture needs it)
  ours, theirs = features
  a, b = theirs["agri"], theirs["urban"]
  reference_fid = fid_score.calculate_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0),
                                                       np.cov(b, rowvar=False))
  result = distances.fid(a, b)
  print(f"FID agri vs urban: ours {result.value:.6f}, pytorch-fid {reference_fid:.6f}")
  assert reference_fid > 10  # large: the comparison can fail
  assert abs(result.value - reference_fid) <= 1e-3 * reference_fid
  assert any("singular" in w for w in result.warnings)
  assert abs(distances.fid(ours["agri"], ours["urban"]).value - reference_fid) <= 1e-3 * reference_fid
  reference_kid = metric_kid.kid_features_to_metric(torch.from_numpy(a), torch.from_numpy(b), kid_subset_size=12,
                                                    kid_subsets=20, verbose=False)
  kid = distances.kid(a, b, subset_size=12, subsets=20)
  print(f"KID: ours {kid.value:.6f} ± {kid.std:.6f}, torch-fidelity {reference_kid}")
  assert abs(kid.value - reference_kid["kernel_inception_distance_mean"]) <= 1e-3 * abs(kid.value)
  assert abs(kid.std - reference_kid["kernel_inception_distance_std"]) <= 1e-3 * kid.std
  assert kid.value > 1e-3


def test_distances_on_too_few_images_warn_not_crash():
  rng = np.random.default_rng(0)
  one, many = rng.normal(size=(1, 8)), rng.normal(size=(5, 8))
  assert distances.fid(one, many).value is None and distances.kid(one, many).value is None
  small = distances.fid(many, rng.normal(size=(5, 8)) + 1)
  assert np.isfinite(small.value) and small.warnings
  assert "subset size 5" in distances.kid(many, many + 1).warnings[0]


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_lpips_package(tmp_path, net):
  torch = pytest.importorskip("torch", reason="torch (optional test dependency) is not installed")
  lpips = pytest.importorskip("lpips", reason="lpips (test dependency) is not installed")
  reference = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
  variance_preserving(torch, reference.net, seed=1)
  backbone = {f"features.{key.split('.', 1)[1]}": value for key, value in reference.net.state_dict().items()}
  digest = save(torch, backbone, tmp_path / "backbone.pth")
  network, record = feature_weights.lpips_network(net, None, None, str(tmp_path / "backbone.pth"), digest)
  assert record["linear"]["published_file"]  # the installed package's shipped linear weights
  a, b = real_optical("agri", 4, 64), real_optical("urban", 4, 64)
  ours = np.asarray(network(a, b))
  with torch.no_grad():
    tensor = lambda x: torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1)
    theirs = reference(tensor(a), tensor(b)).reshape(-1).numpy()
  relative = np.max(np.abs(ours - theirs) / np.abs(theirs))
  print(f"LPIPS {net}: {theirs}, max relative difference {relative:.2e}")
  assert relative < 1e-4 and theirs.min() > 0.05


def test_sar2optical_variant_equals_torchvision_inception_logits(tmp_path):
  """--fid_variant=sar2optical: torchvision's Inception-v3 logits after Resize(342), CenterCrop(299), ImageNet Normalize."""
  torch = pytest.importorskip("torch", reason="torch (optional test dependency) is not installed")
  torchvision = pytest.importorskip("torchvision", reason="torchvision (test dependency) is not installed")
  from torchvision.transforms import v2  # pylint: disable=g-import-not-at-top
  model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=True)
  variance_preserving(torch, model, seed=2)
  model.eval()
  digest = save(torch, model.state_dict(), tmp_path / "inception.pth")
  network, record = feature_weights.fid_network("sar2optical", str(tmp_path / "inception.pth"), digest)
  images = real_optical("grassland", 4)
  ours = np.asarray(network(images))
  transform = v2.Compose([v2.Resize(342), v2.CenterCrop(299), v2.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
  with torch.no_grad():
    batch = transform(torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float32) / 255))
    theirs = model(batch).numpy()
  relative = np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs))
  print(f"sar2optical variant: logits {ours.shape}, max relative difference {relative:.2e}")
  assert ours.shape == (4, 1000) and relative < 1e-4 and np.std(theirs, axis=0).mean() > 1e-3 * np.abs(theirs).mean()
  assert not record["published_file"]
