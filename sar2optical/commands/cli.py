"""What the entry scripts share: absl setup, a `--help` of the command's own flags, and one clear line for user
errors (a --config that names no file among them)."""

import difflib
import logging as std_logging
import os
import pathlib
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import jax
from absl import app, flags, logging
from ml_collections.config_flags.config_flags import ConfigFileFlagParser

from sar2optical import configs
from sar2optical.core import storage
from sar2optical.core.errors import ConfigError, Sar2OpticalError, StoppedBySignal

_HELPFULL = ("--helpfull lists every flag, JAX's (--jax_platforms, --jax_compilation_cache_dir, ...)\n"
             "and absl's (--verbosity, --flagfile, ...) too.")
# What JAX logs on a machine without libtpu (an INFO line whose "libtpu.so" alarms users of CPUs and GPUs).
_NO_LIBTPU = re.compile(r"Unable to initialize backend 'tpu': .*libtpu\.so: cannot open shared object file")


class _QuietLibraries(std_logging.Filter):
  """Drops the INFO chatter of Orbax and Grain (a dozen lines per checkpoint); keeps their warnings and errors,
  but for Orbax's traceback of a write that failed on a full disk: DiskFull says that in one line. Drops JAX's
  "Unable to initialize backend 'tpu': ... libtpu.so: cannot open shared object file", which every machine
  without libtpu logs at its first computation; keeps every other message of JAX's, a TPU's real failures too."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.name.startswith("jax") and _NO_LIBTPU.match(record.getMessage()):
      return False
    noisy = any(f"/{package}/" in record.pathname for package in ("orbax", "grain", "fsspec", "gcsfs"))
    if noisy and record.exc_info and storage.caused_by_full_disk(record.exc_info[1]):
      return False
    return record.levelno >= std_logging.WARNING or not noisy


#: The scripts at the top of a clone, which messages name (`python train.py`); installed, they are console scripts.
ENTRY_SCRIPTS = ("train", "eval", "predict")


def use_compilation_cache(workdir: str) -> None:
  """Keeps compiled programs in WORKDIR/jax_cache, so that a resumed run loads its step instead of compiling it,
  unless the user chose a cache (--jax_compilation_cache_dir or JAX_COMPILATION_CACHE_DIR): theirs wins.
  Global JAX settings are the commands' to make, never the library's."""
  given = "jax_compilation_cache_dir" in flags.FLAGS and flags.FLAGS["jax_compilation_cache_dir"].present
  if given or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return
  folder = os.fspath(storage.resolved(storage.as_path(workdir, "--workdir")))
  jax.config.update("jax_compilation_cache_dir", f"{folder}/jax_cache")
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def run(main: Callable[[list[str]], None]) -> None:
  """`absl.app.run(main)`: a Sar2OpticalError becomes `error: <message>` and exit status 2 (one raised while the
  flags are parsed too: a --config that names no file, a config's refusal of its argument); a stop by a signal,
  its message and status.

  `--help` prints the purpose of the command (the docstring of `main`'s module, its examples written as the user
  ran it), the flags that module defines or declares key (`flags.declare_key_flag`) and exits 0; absl's own shows
  the flags of sys.argv[0], none for a console script, and exits 1. JAX's own settings are flags of every command,
  as in other JAX programs (--jax_platforms=cpu, --jax_debug_nans, --jax_compilation_cache_dir=…; `--helpfull`
  lists them).
  """
  if "jax_platforms" not in flags.FLAGS:  # defined once per process
    jax.config.config_with_absl()
  _use_command_help(lambda: _command_help(main))
  def guarded(argv: list[str]) -> None:
    logging.set_verbosity(logging.INFO)
    logging.get_absl_handler().addFilter(_QuietLibraries())
    try:
      main(argv)
    except Sar2OpticalError as error:
      _fail(error)
    except StoppedBySignal as stop:
      logging.flush()
      print(stop, file=sys.stderr)
      sys.exit(stop.exit_status)
  app.run(guarded, flags_parser=_parse_flags)


def _fail(error: Sar2OpticalError) -> NoReturn:
  logging.flush()
  print(f"error: {in_users_words(str(error))}", file=sys.stderr)
  sys.exit(2)


def in_users_words(text: str) -> str:
  """`text` with the entry scripts it names (`python train.py`, `eval.py`, `predict.py`) written as the user runs
  commands: `sar2optical-train` after a console script, `python -m sar2optical.commands.train` after a module; as
  written in a clone, where the scripts are."""
  script = os.path.basename(sys.argv[0]) if sys.argv else ""
  if script.startswith("sar2optical-"):
    style = "sar2optical-{}"
  elif getattr(sys.modules.get("__main__"), "__spec__", None) is not None:
    style = "python -m sar2optical.commands.{}"
  else:
    return text
  for name in ENTRY_SCRIPTS:
    text = re.sub(rf"(?<![\w./-])python {name}\.py(?![\w.-])", style.format(name), text)
  return text


def _invoked_as(command: str) -> str:
  """How the user ran `command` (train, eval, check, ...): `python train.py`, `python -m sar2optical.commands.check`
  or the console script `sar2optical-train`, as sys.argv[0] and `__main__` tell; the console script when they
  tell nothing (`python -c`)."""
  script = os.path.basename(sys.argv[0]) if sys.argv else ""
  if script.startswith("sar2optical-"):
    return script
  if script.endswith(".py"):
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return f"python -m {spec.name}" if spec is not None else f"python {script}"
  return "sar2optical-" + command.replace("_", "-")


def _as_run(text: str, command: str) -> str:
  """`text` with the ways to run `command` (python train.py, python -m sar2optical.commands.train,
  sar2optical-train) written as the user ran it, unless `text` shows that way already."""
  ran = _invoked_as(command)
  ways = (f"python {command}.py", f"python -m sar2optical.commands.{command}",
          "sar2optical-" + command.replace("_", "-"))
  def whole(way: str) -> str:
    return rf"(?<![\w./-]){re.escape(way)}(?![\w.-])"
  if ran not in ways or re.search(whole(ran), text):
    return text
  for way in ways:
    text = re.sub(whole(way), lambda _: ran, text)
  return text


def _command_help(main: Callable[[list[str]], None]) -> str:
  """What `--help` prints: the docstring of `main`'s module, the flags that module defined (or declared key), their
  defaults and help, and where the other flags are."""
  module = sys.modules[main.__module__]
  spec = getattr(module, "__spec__", None)
  command = (spec.name if spec is not None else main.__module__).rpartition(".")[2]
  usage = _as_run((module.__doc__ or "").strip("\n"), command)
  # module_help: "\n<module>:\n  --flag: help\n    (default: ...)..."; absl names `__main__` by sys.argv[0].
  own = flags.FLAGS.module_help(main.__module__).partition(":\n")[2]
  return "\n\n".join(part for part in (usage, own and f"flags:\n{own}", _HELPFULL) if part)


class _CommandHelp(flags.BooleanFlag):
  """--help, -?: prints `text()` to stdout and exits 0 (absl's --help: usage that lists the flags of sys.argv[0],
  status 1)."""

  def __init__(self) -> None:
    super().__init__("help", False, "show this help: the command's own flags", short_name="?")
    self.text: Callable[[], str] = lambda: ""

  def parse(self, argument: Any) -> None:
    super().parse(argument)
    if self.value:
      try:
        sys.stdout.write(self.text() + "\n")
        sys.stdout.flush()
      except BrokenPipeError:  # `--help | head`: the rest is not wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
      sys.exit(0)


def _use_command_help(text: Callable[[], str]) -> None:
  """Makes --help (and -?) print `text()`; --helpshort, --helpfull and --helpxml stay absl's."""
  app.define_help_flags()
  current = flags.FLAGS["help"]
  if not isinstance(current, _CommandHelp):
    delattr(flags.FLAGS, "help")
    delattr(flags.FLAGS, "?")
    current = _CommandHelp()
    flags.DEFINE_flag(current, module_name="absl.app")
  current.text = text


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's parsing of `argv` (`app.parse_flags_with_usage`), but a Sar2OpticalError is one line, status 2: a
  --config that names no file, or one raised by a config's `get_config` (absl wraps it in a flags.Error)."""
  try:
    _check_config_files(argv)
    return flags.FLAGS(argv)
  except Sar2OpticalError as error:
    _fail(error)
  except flags.Error as error:
    cause = _user_error_behind(error)
    if cause is not None:
      _fail(cause)
    message = str(error)  # absl's own report
    if "\n" in message:
      sys.stderr.write(f"FATAL Flags parsing error:\n{textwrap.indent(message, '  ')}\n")
    else:
      sys.stderr.write(f"FATAL Flags parsing error: {message}\n")
    sys.stderr.write("Pass --help to see the command's flags, --helpfull for all.\n")
    sys.exit(1)


def _user_error_behind(error: BaseException) -> Sar2OpticalError | None:
  """The innermost Sar2OpticalError among the errors that caused `error`, None if none."""
  found, seen = None, set()
  cause: BaseException | None = error
  while cause is not None and id(cause) not in seen:
    seen.add(id(cause))
    if isinstance(cause, Sar2OpticalError):
      found = cause
    cause = cause.__cause__ or cause.__context__
  return found


def _config_arguments(argv: Sequence[str]) -> Iterator[tuple[str, str]]:
  """(name, value) of each config file flag (ml_collections' `--config`) in `argv`: --config=V or --config V."""
  names = {name for name in flags.FLAGS if isinstance(flags.FLAGS[name].parser, ConfigFileFlagParser)}
  rest = iter(argv[1:])
  for arg in rest:
    if arg == "--":
      return
    name, equals, value = arg.lstrip("-").partition("=")
    if arg.startswith("-") and name in names:
      given = value if equals else next(rest, None)
      if given is not None:
        yield name, given


def _check_config_files(argv: list[str]) -> None:
  """ConfigError for a --config whose file is not there, naming the packaged configs. ml_collections would leave
  it to the config's first use (a traceback), or fail on the first --config.FIELD override (another)."""
  try:
    argv = flags.FLAGS.read_flags_from_files(argv, force_gnu=False)  # with --flagfile's flags, as ml_collections
  except flags.Error:
    return  # parsing reports it
  for name, value in _config_arguments(argv):
    storage.local_path(value, f"--{name}")  # a URL: ConfigError
    path = value.split(":", 1)[0]  # as ml_collections reads FILE[:ARGUMENT]
    if pathlib.Path(path).is_file():
      continue
    guess = (difflib.get_close_matches(value, configs.CHOICES, n=1)
             or difflib.get_close_matches(pathlib.Path(path).stem, configs.NAMES, n=1))
    raise ConfigError(f"--{name}={value}: no such file: {pathlib.Path(path).absolute()}"
                      + (f"; did you mean --{name}={guess[0]}?" if guess else "")
                      + f" (a config is a file such as configs/pix2pix.py, or a packaged config: "
                      f"{', '.join(configs.CHOICES)})")
