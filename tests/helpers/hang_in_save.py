r"""Runs the repository's train.py unchanged, hanging inside the save of one step, for a test to SIGKILL it there.

  python tests/helpers/hang_in_save.py {data|commit} STEP MARKER [train.py flags...]

data: hangs where Orbax asks Grain for the data iterator's position, while the step's temporary
  folder exists and the model state is not yet written into it (the save's synchronous part).
commit: hangs in Orbax's background thread just before it renames the step's complete temporary
  folder to its final name: `Checkpoints.save` has returned and training goes on, but the step is
  not committed.
Either way the MARKER file is written first, so the test knows when to kill. The patches touch only
Grain's and Orbax's own classes, in this process: the product has no test hook.
"""

import pathlib
import runpy
import sys
import time

import grain
from orbax.checkpoint.path import atomicity

REPO = pathlib.Path(__file__).resolve().parents[2]


def hang(marker: pathlib.Path) -> None:
  marker.write_text("saving\n")
  while True:
    time.sleep(60)


def hang_in_data_item(step: int, marker: pathlib.Path) -> None:
  """Grain's handler writes `<step>.orbax-checkpoint-tmp-*/data/`; it hangs for `step` before asking the iterator."""
  save = grain.checkpoint.CheckpointHandler.save

  def patched(self, directory, *args, **kwargs):
    if directory.parent.name.split(".")[0] == str(step):
      hang(marker)
    return save(self, directory, *args, **kwargs)

  grain.checkpoint.CheckpointHandler.save = patched


def hang_before_commit(step: int, marker: pathlib.Path) -> None:
  """Orbax commits a step by renaming its temporary folder to `<step>`; that rename hangs for `step`."""
  finalize = atomicity.AtomicRenameTemporaryPath.finalize

  async def patched(self, *args, **kwargs):
    if self.get_final().name == str(step):
      hang(marker)
    return await finalize(self, *args, **kwargs)

  atomicity.AtomicRenameTemporaryPath.finalize = patched


def main() -> None:
  where, step, marker, *train_flags = sys.argv[1:]
  {"data": hang_in_data_item, "commit": hang_before_commit}[where](int(step), pathlib.Path(marker))
  sys.path[0] = str(REPO)  # this checkout's sar2optical, as `python train.py` from REPO would import
  sys.argv = [str(REPO / "train.py"), *train_flags]
  runpy.run_path(str(REPO / "train.py"), run_name="__main__")


if __name__ == "__main__":
  main()
