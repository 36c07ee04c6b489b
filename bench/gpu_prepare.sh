#!/usr/bin/env bash
# Fills .gpu/ (ignored) with what bench/gpu.sh needs on a GPU machine that has jax, flax, optax,
# orbax, numpy, opencv, pillow and torch but nothing else of ours and no network: the Python 3.12
# x86-64 wheels it lacks, the shared SEN1-2 sample and the PyTorch reference. Run it here, where
# PyPI is reachable, then carry .gpu with the checkout. Prints each file's size and the total,
# which must stay under the device tool's 64 MiB with the checkout.
#
#   bash bench/gpu_prepare.sh [SHARED=../shared]
#
# Wheels, and who imports them (found by importing train, build_tfds and predict and listing the
# distributions of sys.modules that the device image lacks):
#   grain, ml_collections, portpicker                train.py, the input pipeline, bench/predict.py
#   tensorflow-datasets, array-record, tensorflow-metadata, googleapis-common-protos, dm-tree,
#     immutabledict, importlib_resources, promise, termcolor, toml   the sen1_2 build and its source
#   dm-pix, tensorboardX                             train.py (validation metrics, event files)
#   rasterio, affine                                 predict.py's GeoTIFF reading and writing
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${1:-../shared}
python=${PYTHON:-python3}
rm -rf .gpu && mkdir -p .gpu/wheels
# Same versions as the CPU environment these were tested with. promise has no wheel on PyPI:
# it is pure Python, so its sdist is built into a py3-none-any wheel here.
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .gpu/wheels \
  grain==0.2.18 array-record==0.8.6 rasterio==1.4.4 tensorflow-datasets==4.9.10 tensorflow-metadata==1.21.0 \
  googleapis-common-protos==1.76.0 dm-tree==0.1.10 immutabledict==4.3.1 importlib_resources==7.1.0 \
  termcolor==3.3.0 toml==0.10.2 ml_collections==1.1.0 portpicker==1.6.0 \
  dm-pix==0.4.5 tensorboardX==2.6.5 affine==3.0.1
"$python" -m pip wheel -q --no-deps --no-binary=:all: -w .gpu/wheels promise==2.3
cp -r "$shared/data/sen1-2" .gpu/sen1-2
cp "$shared/bench/torch_seed_pix2pix.py" .gpu/
du -ab .gpu/wheels | sort -n
checkout=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- | tail -1 | cut -f1)
carried=$(du -sb .gpu | cut -f1)
echo "{\"wheels_bytes\": $(du -sb .gpu/wheels | cut -f1), \"sample_bytes\": $(du -sb .gpu/sen1-2 | cut -f1),\
 \"checkout_bytes\": $checkout, \"travelling_mib\": $(( (checkout + carried) / 1048576 )), \"limit_mib\": 64}"
(( checkout + carried < 64 * 1048576 )) || { echo "over the device tool's 64 MiB" >&2; exit 1; }
