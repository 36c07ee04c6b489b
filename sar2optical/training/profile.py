"""A profiler trace of a few training steps, for TensorBoard's Profile tab or Perfetto.

`config.profile_steps` steps are traced, after the first `config.profile_after_steps` steps of the run
(of this process's run: a resumed run counts from the step it resumed at, so the trace never holds the
first step's compilation unless asked to). Process 0 writes the trace, as JAX's profiler lays it out, to
WORKDIR/tensorboard/plugins/profile/<time>/ (`<host>.xplane.pb` and `<host>.trace.json.gz`), beside the
run's scalars: `tensorboard --logdir WORKDIR/tensorboard` shows it in its Profile tab (with the
tensorboard-plugin-profile package), and https://ui.perfetto.dev opens the `.trace.json.gz`. Every step
runs inside a `jax.profiler.StepTraceAnnotation`, so steps are marked in any trace, this one or one taken
by attaching the profiler from outside. For a workdir in a bucket the trace is written to a local temporary
folder and uploaded when it stops.
"""

import os
import pathlib
import tempfile

import jax
from absl import logging

from sar2optical.core import storage

TRACE_FOLDER = "tensorboard"


class TraceWindow:
  """Starts JAX's profiler before the first traced step and stops it after the last; a no-op when
  `profile_steps` is 0 or on processes other than 0."""

  def __init__(self, profile_steps: int, after_steps: int, start_step: int, workdir: storage.Path):
    self.first = start_step + after_steps + 1
    self.last = self.first + profile_steps - 1 if profile_steps and jax.process_index() == 0 else -1
    self.directory = workdir / TRACE_FOLDER
    self.tracing = False
    self._local: tempfile.TemporaryDirectory | None = None

  def before_step(self, step: int) -> None:
    if step == self.first and self.last >= step:
      remote = storage.is_remote(self.directory)
      self._local = tempfile.TemporaryDirectory(prefix="sar2optical-trace-") if remote else None
      jax.profiler.start_trace(self._local.name if self._local else os.fspath(self.directory))
      self.tracing = True

  def after_step(self, step: int, outputs) -> None:
    """Stops the trace after step `last`, once `outputs` (the step's results) are computed."""
    if self.tracing and step == self.last:
      jax.block_until_ready(outputs)
      self.stop()
      logging.info("Profiler trace of steps %d-%d written to %s/plugins/profile/", self.first, self.last,
                   self.directory)

  def stop(self) -> None:
    """Ends a trace still running (the run stopped inside the window); safe to call twice."""
    if self.tracing:
      self.tracing = False
      jax.profiler.stop_trace()
      if self._local:
        with self._local as folder:
          for file in pathlib.Path(folder).rglob("*"):
            if file.is_file():
              storage.write_whole(self.directory / file.relative_to(folder).as_posix(), file.read_bytes())
