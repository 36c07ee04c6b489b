r"""Generator inference images/s (eval mode): ours against PyTorch eager and torch.compile, alternated in one run.

  python bench/infer_speed.py [--batches 1,8] [--rounds 2] [--steps 5] [--references eager,compile]

Needs torch (a CPU build: pip install torch) for the references, and a C++ compiler for
torch.compile's inductor. Prints JSON lines, then a summary.
"""

import compare

if __name__ == "__main__":
  compare.main("infer", "1,8", "eager,compile")
