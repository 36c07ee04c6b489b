"""The `python -m sar2optical.commands.export` command (console script `sar2optical-export`)."""

import pathlib

from absl import flags

from sar2optical.commands import cli
from sar2optical.core.errors import ConfigError
from sar2optical.interop import stablehlo as export_lib
from sar2optical.interop.stablehlo import DEFAULT_PLATFORMS, LOADER_NAME, PLATFORMS, export_workdir
from sar2optical.interop.torch_export import export_torch

__doc__ = export_lib.__doc__  # the usage that --help prints: the module's own

FORMATS = ("stablehlo", "onnx", "torch")


def _define_flags() -> None:
  flags.DEFINE_string("workdir", None, "Workdir holding checkpoints/ (trained or converted).", required=True)
  flags.DEFINE_string("format", "stablehlo",
                      "stablehlo: serialized jax.export (F, F.json, load_exported.py); onnx: an ONNX model (F, "
                      "F.json; needs sar2optical[onnx]); torch: the original's state_dicts in the folder F "
                      "(gen/disc .pth and .safetensors).")
  flags.DEFINE_string("output", None, "The file to write (stablehlo, onnx) or the folder (torch).", required=True)
  flags.DEFINE_string("step", "latest", "Checkpoint step to export, or latest.")
  flags.DEFINE_list("platforms", list(DEFAULT_PLATFORMS),
                    f"stablehlo only: platforms the artifact runs on, some of {', '.join(PLATFORMS)}.")


def _export_onnx(workdir: str, output: str, step: str) -> pathlib.Path:
  try:
    from sar2optical.interop import onnx_graph
  except ModuleNotFoundError as error:
    if error.name != "onnx":
      raise
    raise ConfigError("--format=onnx needs the onnx package, which is not installed: "
                      "pip install 'sar2optical[onnx]'") from None
  return onnx_graph.export_onnx(workdir, output, step)


def export(format_name: str, workdir: str, output: str, step: str, platforms: tuple[str, ...]) -> str:
  """Writes `output` in `format_name`; returns the line saying what was written. ConfigError for another format."""
  if format_name == "stablehlo":
    path = export_workdir(workdir, output, step, platforms)
    return f"exported -> {path} (+ {path.name}.json, {LOADER_NAME})"
  if format_name == "onnx":
    path = _export_onnx(workdir, output, step)
    return f"exported -> {path} (+ {path.name}.json)"
  if format_name == "torch":
    return "exported -> " + ", ".join(map(str, export_torch(workdir, output, step)))
  raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {format_name!r}")


def main(argv: list[str]) -> None:
  del argv
  values = flags.FLAGS
  print(export(values.format, values.workdir, values.output, values.step, tuple(values.platforms)))


def run() -> None:
  """The console script `sar2optical-export`."""
  _define_flags()
  cli.run(main)


if __name__ == "__main__":  # flags are defined here only, so that importing this module defines none
  run()
