"""What a user sees before anything runs: `--help` of a command (its purpose, examples and own flags, status 0),
a `--config` that names no file (one line, status 2), and no alarming libtpu line from JAX on a CPU."""

import logging
import os
import re
import subprocess
import sys
import tomllib

import pytest
from conftest import REPO

from sar2optical.commands import cli

CPU = {**os.environ, "JAX_PLATFORMS": "cpu"}


def run(args: list[str], env: dict[str, str] = CPU) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def defined_flags(command: str) -> set[str]:
  """The flags sar2optical/commands/<command>.py defines (`DEFINE_x("name", ...)`, --config's included)."""
  source = (REPO / "sar2optical" / "commands" / f"{command}.py").read_text()
  return set(re.findall(r'DEFINE_\w+\(\s*"(\w+)"', source))


def listed_flags(help_text: str) -> set[str]:
  """The flags a `--help` lists: its lines `  --name: ...` and `  --[no]name: ...`."""
  return set(re.findall(r"^  --(?:\[no\])?(\w+):", help_text, flags=re.MULTILINE))


def assert_command_help(result: subprocess.CompletedProcess, command: str, example: str) -> None:
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
  assert example in result.stdout
  assert listed_flags(result.stdout) == defined_flags(command)
  assert "jax_debug_nans" not in result.stdout and "alsologtostderr" not in result.stdout  # JAX's, absl's flags
  assert "--helpfull" in result.stdout.splitlines()[-2]  # says where the others are, last


@pytest.mark.parametrize("script, example", [
    ("train.py", "python train.py --config=configs/pix2pix.py --workdir=runs/pix2pix"),
    ("eval.py", "python eval.py --workdir=runs/pix2pix"),
    ("predict.py", "python predict.py --checkpoint=runs/pix2pix/checkpoints/87500 --input=")])
def test_help_of_a_script_shows_its_own_flags(script, example):
  result = run([script, "--help"])
  assert_command_help(result, script.removesuffix(".py"), example)
  assert {"workdir"} <= listed_flags(result.stdout)


def test_help_of_train_lists_config_and_says_how_to_override_it():
  result = run(["train.py", "--help"])
  assert "--config: Training config" in result.stdout and "--config.FIELD=VALUE" in result.stdout


@pytest.mark.parametrize("script, command, example", [
    ("sar2optical-eval", "eval", "sar2optical-eval --workdir=runs/pix2pix"),  # flags defined on import
    ("sar2optical-check", "check", "sar2optical-check --root=/data/v_2")])  # flags defined by run()
def test_help_of_a_console_script_shows_its_own_flags_and_its_name(script, command, example):
  """The console script's entry point, as pyproject.toml names it; the examples name the console script."""
  entry_point = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"][script]
  module, _, function = entry_point.partition(":")
  result = run(["-c", f"import sys; sys.argv[0] = {script!r}; from {module} import {function}; {function}()",
                "--help"])
  assert_command_help(result, command, example)
  assert f"python {command}.py" not in result.stdout and "python -m" not in result.stdout


def test_help_of_a_module_run_with_python_m():
  result = run(["-m", "sar2optical.commands.predict", "--help"])
  assert_command_help(result, "predict", "python -m sar2optical.commands.predict --workdir=runs/pix2pix")


@pytest.mark.parametrize("args", [["--config=quickstar"], ["--config", "quickstar", "--config.data.root=/data"]])
def test_a_config_that_names_no_file_is_one_line(args, tmp_path):
  result = run(["train.py", *args, f"--workdir={tmp_path}"])
  assert result.returncode == 2, result.stderr[-3000:]
  [line] = result.stderr.strip().splitlines()
  assert line.startswith("error: --config=quickstar:")
  assert str(REPO / "quickstar") in line  # the file looked for
  assert "did you mean --config=quickstart?" in line and "pix2pix:paper" in line  # the packaged configs
  assert not any(tmp_path.iterdir())


def test_no_libtpu_line_when_a_command_starts_jax(tmp_path):
  """train.py computes on JAX's default backend before it finds the data root missing; JAX, left to choose its
  platforms, tries a TPU first and logs libtpu's absence."""
  env = {name: value for name, value in os.environ.items() if name != "JAX_PLATFORMS"}
  result = run(["train.py", "--config=configs/quickstart.py", f"--workdir={tmp_path / 'run'}",
                f"--config.data.root={tmp_path / 'missing'}"], env=env)
  assert result.returncode == 2, result.stderr[-3000:]
  assert "data root not found" in result.stderr
  assert "libtpu.so" not in result.stderr and "Unable to initialize backend" not in result.stderr


@pytest.mark.parametrize("message, kept", [
    ("Unable to initialize backend 'tpu': INTERNAL: Failed to open libtpu.so: libtpu.so: cannot open shared object "
     "file: No such file or directory", False),
    ("Unable to initialize backend 'tpu': ABORTED: The TPU is already in use by process with pid 4242.", True),
    ("Unable to initialize backend 'cuda': no supported devices found for platform CUDA", True)])
def test_only_jax_s_no_libtpu_message_is_dropped(message, kept):
  record = logging.LogRecord("jax._src.xla_bridge", logging.INFO, "/jax/_src/xla_bridge.py", 849, message, None, None)
  assert cli._QuietLibraries().filter(record) is kept


@pytest.mark.parametrize("argv0, hint", [("sar2optical-eval", "sar2optical-train --config="),
                                         ("eval.py", "python train.py --config=")])
def test_a_hint_names_the_command_the_user_has(argv0, hint, tmp_path):
  """Installed users have console scripts, not the clone's train.py: the hint of an error names what they have."""
  result = run(["-c", f"import sys; sys.argv[0] = {argv0!r}; from sar2optical.commands.eval import run; run()",
                f"--workdir={tmp_path}"])
  assert result.returncode == 2, result.stderr[-2000:]
  assert hint in result.stderr.strip().splitlines()[-1], result.stderr[-2000:]
