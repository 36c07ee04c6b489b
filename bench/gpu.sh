#!/usr/bin/env bash
# Every GPU row of the README in one run (under 8 minutes on an H100/H200 is the aim): our train step
# (both transposed-conv forms, fp32 and bf16, batch 16/64/128/256) next to PyTorch eager and
# torch.compile, MFU, train.py end to end on a cycled sen1_2/pixels build, predict.py on a 10,980²
# scene. See bench/gpu_speed.py for the parts; extra arguments go to it (e.g. --smoke, --parts=...).
#
# The GPU image has jax, flax, optax, orbax, numpy, opencv and torch; the rest travels in .gpu/
# (bench/gpu_prepare.sh fills it here): its wheels are installed into /tmp/site, its SEN1-2 sample
# and PyTorch reference are used in place of ../shared. With $OUT set (the device tool's folder
# that comes back), the JSON lines and the logs are written there too.
set -euo pipefail
cd "$(dirname "$0")/.."
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # JAX and torch share the GPU in one process
export PYTHONUNBUFFERED=1
args=()
if [[ -n "${OUT:-}" ]]; then
  args+=(--out="$OUT/gpu.jsonl")
  exec > >(tee "$OUT/gpu.log") 2>&1
fi
if [[ -d .gpu ]]; then
  if [[ -d .gpu/wheels ]] && ! python3 -c "import grain, tensorflow_datasets, rasterio" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .gpu/wheels/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  args+=(--data=.gpu/sen1-2 --torch_reference=.gpu/torch_seed_pix2pix.py)
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
python3 -c "import jax, flax, optax, numpy; print({m.__name__: m.__version__ for m in (jax, flax, optax, numpy)})"
python3 bench/gpu_speed.py "${args[@]}" "$@"
