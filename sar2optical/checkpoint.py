"""Orbax checkpoints in `WORKDIR/checkpoints/<step>/`: train state, data iterator and metadata.

The metadata item holds what a user needs to reproduce or use a result: the config, the pixel
mapping and the step. Orbax writes each step to a temporary directory and renames it when
complete, so a half-written checkpoint is never taken as the latest.
"""

import pathlib
from typing import Any

import grain
import ml_collections
import orbax.checkpoint as ocp

from sar2optical.errors import CheckpointError
from sar2optical.pixels import PixelSpec


def checkpoint_dir(workdir: str | pathlib.Path) -> pathlib.Path:
  return pathlib.Path(workdir).resolve() / "checkpoints"


class Checkpoints:
  """The checkpoints of one workdir. Saves are asynchronous; `wait()` blocks until they are on disk."""

  def __init__(self, workdir: str | pathlib.Path, *, keep: int | None = None, create: bool = True):
    self.directory = checkpoint_dir(workdir)
    if not create and not self.directory.is_dir():
      raise CheckpointError(f"no checkpoints in {workdir}: {self.directory} does not exist "
                            "(train first with: python train.py --config=... --workdir=...)")
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create, enable_async_checkpointing=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, data_iterator: grain.DatasetIterator, metadata: dict[str, Any]) -> None:
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=grain.checkpoint.CheckpointSave(data_iterator),
        metadata=ocp.args.JsonSave(metadata)))

  def restore(self, step: int, abstract_state: Any, data_iterator: grain.DatasetIterator | None = None) -> Any:
    """The state at `step`, placed as `abstract_state` says; restores `data_iterator` in place if given."""
    items = {"state": ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    return self._manager.restore(self._checked(step), args=ocp.args.Composite(**items))["state"]

  def metadata(self, step: int) -> dict[str, Any]:
    return self._manager.restore(self._checked(step),
                                 args=ocp.args.Composite(metadata=ocp.args.JsonRestore()))["metadata"]

  def resolve_step(self, step: str | int) -> int:
    """'latest' or a step number → an existing step; CheckpointError naming what exists otherwise."""
    steps = self.all_steps()
    if not steps:
      raise CheckpointError(f"no checkpoints in {self.directory}")
    return steps[-1] if step == "latest" else self._checked(int(step))

  def _checked(self, step: int) -> int:
    if step not in self._manager.all_steps():
      raise CheckpointError(f"no checkpoint at step {step} in {self.directory}; steps there: {self.all_steps()}")
    return step

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def make_metadata(config: ml_collections.ConfigDict, pixels: PixelSpec, step: int) -> dict[str, Any]:
  return {"step": step, "config": config.to_dict(), "pixels": pixels.to_dict()}


def config_from_metadata(metadata: dict[str, Any]) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(metadata["config"])
