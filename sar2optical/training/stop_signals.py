"""Stop requests: SIGTERM (preemption) and SIGINT (Ctrl-C) ask a run to save and stop between steps.

One process: Python handlers set a flag that the loop reads after each step. Several processes:
JAX's preemption service (started by jax.distributed.initialize) catches SIGTERM on any host and
picks a step at which every process stops together. Either way the loop checkpoints that step and
raises `stopped(...)`, which the entry scripts turn into exit status 128 + the signal's number.
"""

import contextlib
import pathlib
import signal
import threading
from collections.abc import Callable, Iterator

import jax
from jax.experimental import multihost_utils

from sar2optical.core.errors import StoppedBySignal

#: `requested(step)`: the name of the signal that asks the run to stop after `step`, else None.
StopRequested = Callable[[int], str | None]


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequested]:
  """Yields `requested(step)` while the handlers are installed; restores the previous ones after."""
  if jax.process_count() > 1:
    yield lambda step: "SIGTERM" if multihost_utils.reached_preemption_sync_point(step) else None
    return
  if threading.current_thread() is not threading.main_thread():  # Python handles signals there only
    yield lambda step: None
    return
  received: list[str] = []
  handled = (signal.SIGTERM, signal.SIGINT)
  previous = {number: signal.signal(number, lambda number, frame: received.append(signal.Signals(number).name))
              for number in handled}
  try:
    yield lambda step: received[0] if received else None
  finally:
    for number, handler in previous.items():
      signal.signal(number, handler)


def stopped(name: str, step: int, num_steps: int, checkpoint_dir: pathlib.Path) -> StoppedBySignal:
  """The exception a run raises once the checkpoint of `step` is written after signal `name`."""
  return StoppedBySignal(f"Stopped by {name} after step {step} of {num_steps}: the checkpoint is in "
                         f"{checkpoint_dir / str(step)}; run the same command to resume.",
                         128 + signal.Signals[name].value)
