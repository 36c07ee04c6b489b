r"""Generator inference images/s (eval mode): ours against the PyTorch reference, alternated in one run.

  python bench/infer_speed.py [--batches 1,8] [--rounds 2] [--steps 5]

Needs torch (a CPU build: pip install torch) for the reference. Prints JSON lines, then a summary.
"""

import compare

if __name__ == "__main__":
  compare.main("infer", "1,8")
