#!/usr/bin/env bash
# Training images/s and MFU on a GPU, fp32 and bf16 at batch 16 and 64, next to the PyTorch
# reference at the same batch. Needs jax, flax, optax, numpy and torch; nothing else, no network.
# Prints JSON lines; finishes in under 4 minutes on an H100. Pass --torch_reference=PATH if
# ../shared/bench/torch_seed_pix2pix.py is not beside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX and torch share the GPU in one process
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
exec python3 bench/gpu_speed.py --batches 16,64 --dtypes float32,bfloat16 --steps 15 "$@"
