r"""Training images/s: our jit step against the PyTorch reference (eager), alternated in one run.

  python bench/train_speed.py [--batches 2,4] [--rounds 2] [--steps 5]

Needs torch (a CPU build: pip install torch) for the reference. Prints JSON lines, then a summary.
"""

import compare

if __name__ == "__main__":
  compare.main("train", "2,4")
