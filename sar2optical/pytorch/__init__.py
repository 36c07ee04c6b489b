"""PyTorch interop: the original SAR2Optical's `.pth` files read without torch (`pth_files`), its
state_dict names and layouts mapped onto our Flax variables (`weights`), and its checkpoints
converted into a workdir (`convert`)."""
