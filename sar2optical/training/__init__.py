"""Training Pix2Pix: what is trained (`recipe`), its state (`state`), the jit step (`step`), the device
mesh (`mesh`), and the loop (`loop`) with its periodic actions (`actions`) and stop signals (`stop_signals`)."""
