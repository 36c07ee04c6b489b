r"""predict's start-up: restoring the generator alone (today) against restoring the whole TrainState (0.1), in one run.

  git worktree add /tmp/v01 541f8b5      # version 0.1, the "before" code
  python bench/predict_startup.py [--rounds=5] [--v01=/tmp/v01] [--workdir=DIR [--keep_workdir]]
      [--cases=after,before,whole]

Writes (once, or takes --workdir) a checkpoint of the original's model: the 8-level U-Net at 256²
(`configs/pix2pix.py` defaults), its PatchGAN and both Adam states, every array non-zero as after training
(so none compresses away on disk). Then, alternating the order round by round, runs each case in a fresh
process that imports the code, restores the generator and translates one 256² tile:

- `after`: today's `sar2optical.inference.restore.load_generator` (an Orbax partial restore of G).
- `before`: 0.1's `sar2optical.trained_generator.load_generator` from the --v01 worktree
  (PYTHONPATH=--v01): it restores the whole TrainState (G, D, both Adam states) and keeps G.
- `whole`: today's code restoring the whole TrainState (`sar2optical.interop.torch_export.load_state`,
  what 0.1 restored): separates the partial restore's effect from other changes between the versions.

Each process reports the seconds to import the restore code, to restore (variables ready), to the first
tile (restore + compile + first call, output on the host; imports not included) and its peak RSS, both
ru_maxrss and /proc's VmHWM (ru_maxrss counts the parent's peak at the child's start: the checkpoint is
written in a child too, so that this process stays small). `process_s` is a case's whole process, Python's
start included, timed from here. Before the first round every checkpoint file is read once, so all cases
read from the page cache. Prints one JSON object: per case the values of every round and their medians,
and the ratios of the medians after/before (and after/whole). Deletes the checkpoint it wrote unless
--keep_workdir.
"""

import dataclasses
import datetime
import hashlib
import importlib
import json
import os
import pathlib
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

REPO = pathlib.Path(__file__).resolve().parents[1]

_ROUNDS = flags.DEFINE_integer("rounds", 5, "Rounds; each runs every case once, in alternating order.", lower_bound=1)
_V01 = flags.DEFINE_string("v01", "/tmp/v01", "A worktree of version 0.1 (commit 541f8b5), the `before` code.")
_WORKDIR = flags.DEFINE_string("workdir", None, "A workdir to restore; written here first if it has no checkpoint. "
                               "Default: a temporary folder (about 0.7 GB).")
_KEEP_WORKDIR = flags.DEFINE_bool("keep_workdir", False, "With --workdir: keep the checkpoint this run wrote there.")
_CASES = flags.DEFINE_list("cases", ["after", "before", "whole"], "Cases to run: after, before, whole.")
_CASE = flags.DEFINE_enum("case", None, ["after", "before", "whole", "write"],
                          "Internal: run one case (or write the workdir) in this process.")

TILE = 256
STEP = 1000  # the step the checkpoint is saved at (any)
MEASURES = ("import_s", "restore_s", "first_tile_s", "process_s", "peak_rss_mb", "vm_hwm_mb")


def _load_function(case: str):
  """The restore function of `case`: workdir → a generator whose `g_params`, `g_stats` are restored."""
  if case == "whole":
    load_state = importlib.import_module("sar2optical.interop.torch_export").load_state
    return lambda workdir: load_state(workdir)[0]
  # `before`: 0.1's module, on its PYTHONPATH.
  module = "sar2optical.inference.restore" if case == "after" else "sar2optical.trained_generator"
  return importlib.import_module(module).load_generator


def _run_case(case: str, workdir: str) -> dict:
  """In a fresh process: import, restore, translate one tile; the seconds of each and the peak RSS."""
  start = time.perf_counter()
  import jax  # pylint: disable=g-import-not-at-top (timed with the restore code)
  load_generator = _load_function(case)
  imported = time.perf_counter()
  generator = load_generator(workdir)
  jax.block_until_ready((generator.g_params, generator.g_stats))
  restored = time.perf_counter()
  tile = np.random.default_rng(0).integers(0, 256, (1, TILE, TILE, generator.config.model.in_channels), np.uint8)
  output = np.asarray(generator(tile))
  first_tile = time.perf_counter()
  import sar2optical  # pylint: disable=g-import-not-at-top (already imported: which copy)
  return {"import_s": imported - start, "restore_s": restored - imported, "first_tile_s": first_tile - imported,
          "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "vm_hwm_mb": _vm_hwm_mb(),
          "step": generator.step,
          "output_sha256": hashlib.sha256(output.tobytes()).hexdigest()[:16], "package": sar2optical.__file__,
          "device": str(jax.devices()[0])}


def _vm_hwm_mb() -> float | None:
  """This process's peak RSS from /proc (VmHWM), which, unlike ru_maxrss, never counts a parent's memory."""
  try:
    line = next(row for row in pathlib.Path("/proc/self/status").read_text().splitlines() if row.startswith("VmHWM:"))
  except (OSError, StopIteration):
    return None
  return int(line.split()[1]) / 1024


def _default_state_shapes():
  """(config, recipe, the abstract TrainState) of the default config (today's code)."""
  import jax  # pylint: disable=g-import-not-at-top (the `before` processes must not import today's code)

  from sar2optical.configs import fields  # pylint: disable=g-import-not-at-top
  from sar2optical.model.pixels import PixelSpec  # pylint: disable=g-import-not-at-top
  from sar2optical.training.mesh import make_mesh  # pylint: disable=g-import-not-at-top
  from sar2optical.training.recipe import make_recipe  # pylint: disable=g-import-not-at-top
  from sar2optical.training.state import abstract_state  # pylint: disable=g-import-not-at-top
  config = fields.default_config()  # the original's: 8 levels at 256²
  recipe = make_recipe(config, PixelSpec())
  return config, recipe, abstract_state(recipe, make_mesh(jax.local_devices()[:1]), TILE, config.model.in_channels)


def _write_workdir(workdir: pathlib.Path) -> None:
  """A checkpoint at STEP of the default config: G and D initialised, both Adam states random and non-zero."""
  import jax  # pylint: disable=g-import-not-at-top

  from sar2optical.checkpoints import manager  # pylint: disable=g-import-not-at-top
  from sar2optical.checkpoints.metadata import make_metadata  # pylint: disable=g-import-not-at-top
  from sar2optical.training.mesh import make_mesh  # pylint: disable=g-import-not-at-top
  from sar2optical.training.state import create_state  # pylint: disable=g-import-not-at-top
  config, recipe, _ = _default_state_shapes()
  state = create_state(recipe, make_mesh(jax.local_devices()[:1]), 0, TILE, config.model.in_channels)
  rng = np.random.default_rng(0)

  def moment(leaf):  # Adam's mu and nu as after training: small, non-zero, positive (nu needs it)
    if not jax.numpy.issubdtype(leaf.dtype, jax.numpy.floating) or leaf.ndim == 0:
      return leaf
    return jax.device_put(np.abs(rng.standard_normal(leaf.shape, np.float32)) * 1e-4, leaf.sharding)

  state = dataclasses.replace(state, step=jax.numpy.asarray(STEP, state.step.dtype),
                              g_opt_state=jax.tree.map(moment, state.g_opt_state),
                              d_opt_state=jax.tree.map(moment, state.d_opt_state))
  checkpoints = manager.Checkpoints(workdir)
  checkpoints.save(STEP, state, None, make_metadata(config, recipe.pixels, STEP))
  checkpoints.wait()
  checkpoints.close()


def _array_mb() -> dict[str, float]:
  """MB of the generator's variables (what `after` restores) and of the whole state (what `before` restores)."""
  import jax  # pylint: disable=g-import-not-at-top
  _, _, abstract = _default_state_shapes()
  def megabytes(tree) -> float:
    return round(sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree)) / 2**20, 1)
  return {"generator_mb": megabytes((abstract.g_params, abstract.g_stats)), "state_mb": megabytes(abstract)}


def _read_once(directory: pathlib.Path) -> int:
  """Reads every file below `directory` (into the page cache); returns their total size."""
  total = 0
  for path in directory.rglob("*"):
    if path.is_file():
      with open(path, "rb") as file:
        while chunk := file.read(1 << 24):
          total += len(chunk)
  return total


def _child(case: str, workdir: pathlib.Path) -> dict:
  """`case` run in a fresh process, its JSON line read back, and its wall time measured from here."""
  env = dict(os.environ)
  if case == "before":
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_V01.value, env.get("PYTHONPATH")]))
  start = time.perf_counter()
  process = subprocess.run([sys.executable, __file__, f"--case={case}", f"--workdir={workdir}"], env=env,
                           cwd=_V01.value if case == "before" else REPO, capture_output=True, text=True, check=False)
  elapsed = time.perf_counter() - start
  if process.returncode:
    raise RuntimeError(f"case {case} exited with status {process.returncode}:\n{process.stderr[-3000:]}")
  result = json.loads(process.stdout.strip().splitlines()[-1])
  expected = pathlib.Path(_V01.value if case == "before" else REPO).resolve()
  if not pathlib.Path(result["package"]).resolve().is_relative_to(expected):
    raise RuntimeError(f"case {case} imported sar2optical from {result['package']}, not from {expected}")
  return {**result, "process_s": elapsed}


def _versions() -> dict[str, str]:
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  return {name: metadata.version(name) for name in ("jax", "jaxlib", "flax", "orbax-checkpoint", "numpy")}


def _v01_commit() -> str:
  return subprocess.run(["git", "-C", _V01.value, "rev-parse", "HEAD"], capture_output=True, text=True,
                        check=True).stdout.strip()


def _measure(workdir: pathlib.Path) -> dict:
  """Every case once per round (order reversed every other round); medians and ratios."""
  cases = list(_CASES.value)
  # In a child: this process stays small, and ru_maxrss, which a child inherits from its parent at its start,
  # stays the children's own.
  sizes = subprocess.run([sys.executable, __file__, "--case=write", f"--workdir={workdir}"], cwd=REPO,
                         capture_output=True, text=True, check=False)
  if sizes.returncode:
    raise RuntimeError(f"writing {workdir} failed:\n{sizes.stderr[-3000:]}")
  on_disk = _read_once(workdir / "checkpoints")
  runs: dict[str, list[dict]] = {case: [] for case in cases}
  for round_index in range(_ROUNDS.value):
    for case in cases if round_index % 2 == 0 else cases[::-1]:
      runs[case].append(_child(case, workdir))
      print(f"round {round_index + 1} {case}: " + ", ".join(f"{k} {runs[case][-1][k]:.2f}" for k in MEASURES),
            file=sys.stderr)
  report = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "versions": _versions(),
            "v01_commit": _v01_commit(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "device": runs[cases[0]][0]["device"], "rounds": _ROUNDS.value, "tile": TILE, "levels": 8,
            "checkpoint_mb_on_disk": round(on_disk / 2**20, 1), **json.loads(sizes.stdout.strip().splitlines()[-1])}
  for case in cases:
    values = runs[case]
    report[case] = {"median": {k: round(statistics.median(v[k] for v in values), 2) for k in MEASURES},
                    "runs": {k: [round(v[k], 2) for v in values] for k in MEASURES},
                    "step": values[0]["step"], "output_sha256": sorted({v["output_sha256"] for v in values})}
  for baseline in ("before", "whole"):
    if "after" in runs and baseline in runs:
      report[f"after_over_{baseline}"] = {k: round(report["after"]["median"][k] / report[baseline]["median"][k], 3)
                                          for k in MEASURES}
  return report


def main(argv: list[str]) -> None:
  del argv
  if _CASE.value:
    if _WORKDIR.value is None:
      raise app.UsageError("--case needs --workdir")
    if _CASE.value != "write":
      print(json.dumps(_run_case(_CASE.value, _WORKDIR.value)))
      return
    sys.path.insert(0, str(REPO))
    if not (pathlib.Path(_WORKDIR.value) / "checkpoints").is_dir():
      _write_workdir(pathlib.Path(_WORKDIR.value))
    print(json.dumps(_array_mb()))
    return
  unknown = set(_CASES.value) - {"after", "before", "whole"}
  if unknown:
    raise app.UsageError(f"--cases: unknown {', '.join(sorted(unknown))}")
  if "before" in _CASES.value and not (pathlib.Path(_V01.value) / "sar2optical" / "trained_generator.py").is_file():
    raise app.UsageError(f"--v01={_V01.value} is not a worktree of 0.1 (git worktree add {_V01.value} 541f8b5)")
  if _WORKDIR.value:
    workdir = pathlib.Path(_WORKDIR.value).resolve()
    made = not (workdir / "checkpoints").is_dir()
    try:
      report = _measure(workdir)
    finally:
      if made and not _KEEP_WORKDIR.value:
        shutil.rmtree(workdir / "checkpoints", ignore_errors=True)
  else:
    with tempfile.TemporaryDirectory() as scratch:
      report = _measure(pathlib.Path(scratch) / "workdir")
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main)
