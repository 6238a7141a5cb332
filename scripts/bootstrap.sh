#!/usr/bin/env bash
# Creates .venv (when missing) and installs PromptSpool with llama-cpp-python built for this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.promptspool-installed"

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip wheel setuptools

# llama-cpp-python ships as source only: pick the backend before pip builds it.
# PROMPTSPOOL_CUDA=1 forces a CUDA build, =0 a CPU build; by default CUDA is used
# when both the toolkit (nvcc) and an NVIDIA GPU are present. A toolkit without a
# GPU builds for the CPU: a CUDA build takes over an hour on a small machine and
# could not be used there anyway.
want_cuda=${PROMPTSPOOL_CUDA:-auto}
if [ "$want_cuda" = auto ]; then
    want_cuda=0
    if command -v nvcc >/dev/null 2>&1 && { [ -e /dev/nvidia0 ] || nvidia-smi -L >/dev/null 2>&1; }; then
        want_cuda=1
    fi
fi
if "$VENV/bin/python" -c "import llama_cpp" >/dev/null 2>&1; then
    echo "bootstrap: llama-cpp-python already installed"
elif [ "$want_cuda" = 1 ]; then
    echo "bootstrap: building llama-cpp-python with CUDA (GPU offload)"
    CMAKE_ARGS="${CMAKE_ARGS:-} -DGGML_CUDA=on" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        "${PIP[@]}" install --no-cache-dir "llama-cpp-python>=0.3.16"
else
    echo "bootstrap: building llama-cpp-python for the CPU (no CUDA toolkit with a GPU found)"
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "${PIP[@]}" install "llama-cpp-python>=0.3.16"
fi

"${PIP[@]}" install -q -e ".[dev]"
touch "$STAMP"
echo "bootstrap: ready ($VENV)"
