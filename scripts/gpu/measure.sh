#!/bin/bash
# On the device (`run` with carry [".gpu"]), after scripts/gpu/pack.sh here. One stage per
# call, each under the 10-minute limit; chain them while the machine is warm:
#   bash scripts/gpu/measure.sh build   # CUDA llama-cpp-python and llama-bench (~7 min)
#   bash scripts/gpu/measure.sh model   # a Llama-2-7B-shaped Q4_K_M, random weights (~3 min)
#   bash scripts/gpu/measure.sh bench single_stream   # one stream vs llama-bench (~4 min)
#   bash scripts/gpu/measure.sh bench batching        # 1/8/32 jobs vs llama-batched-bench
#   bash scripts/gpu/measure.sh bench batching_in_graph  # the same, sampling in llama.cpp's graph
#   bash scripts/gpu/measure.sh test    # the batch engine's tests on the GPU build
# Figures and logs go to $OUT (the device tool brings them back).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}
WORK=$PWD/build/gpu-measure  # ignored by git, so kept between calls on a warm machine
MODEL=$WORK/llama2-7b-q4km.gguf
BUILD=$WORK/lcp-build
mkdir -p "$OUT" "$WORK"
export PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/.gpu/wheels
export PYTHONPATH=$PWD PROMPTSPOOL_BENCH_MODEL=$MODEL
export PROMPTSPOOL_LLAMA_BIN_DIR=$BUILD/bin

case "${1:-}" in
build)
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
  python3 -m pip install --quiet --no-deps .gpu/wheels/*.whl
  # One CMake tree for the Python bindings and llama.cpp's own benchmarks: CUDA compiles once.
  # LLAVA_BUILD=OFF: with the tools on, llama.cpp adds tools/mtmd itself (the worker has no use
  # for it), and a second add_subdirectory of it fails.
  CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=ON \
-DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    python3 -m pip install --no-deps --no-build-isolation --force-reinstall \
    --config-settings=build-dir="$BUILD" .gpu/llama_cpp_python-*-trim.tar.gz \
    > "$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
  ls "$PROMPTSPOOL_LLAMA_BIN_DIR" | tee "$OUT/binaries.txt"
  python3 -c "import llama_cpp; print('gpu offload:', llama_cpp.llama_supports_gpu_offload())"
  ;;
model)
  python3 .gpu/synth_gguf.py .gpu/ggml-vocab-llama-spm.gguf "$WORK/l7-f16.gguf" --shape llama2-7b
  python3 .gpu/quantize.py "$WORK/l7-f16.gguf" "$MODEL" > "$OUT/quantize.log" 2>&1
  rm -f "$WORK/l7-f16.gguf"
  ls -l "$MODEL"
  ;;
bench)
  shift
  python3 -m bench "${@:-single_stream}" 2>&1 | tee -a "$OUT/bench.jsonl"
  ;;
test)
  python3 -m pytest -q -p no:cacheprovider tests/test_batching.py \
    2>&1 | tail -30 | tee "$OUT/test.txt"
  ;;
*)
  echo "usage: $0 build|model|bench [NAME ...]|test" >&2
  exit 2
  ;;
esac
