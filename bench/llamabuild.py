"""llama.cpp's tools built from llama-cpp-python's own sources, cached outside the repository."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import llama_cpp
import platformdirs

TARGETS = ("llama-server", "llama-bench", "llama-batched-bench")
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
)  # fmt: skip


def cache_root() -> Path:
    """Where the benchmarks keep builds and models: PROMPTSPOOL_BENCH_CACHE, else the user's
    cache folder (never the repository)."""
    if override := os.environ.get("PROMPTSPOOL_BENCH_CACHE"):
        return Path(override)
    return Path(platformdirs.user_cache_dir("promptspool")) / "bench"


def _has_targets(folder: Path) -> bool:
    return all((folder / name).is_file() for name in TARGETS)


def bin_dir() -> Path:
    """The folder holding llama-server, llama-bench and llama-batched-bench.

    PROMPTSPOOL_LLAMA_BIN_DIR when set; else the cached build for the installed
    llama-cpp-python version (CUDA when it offloads to a GPU), built first if missing.
    """
    override = os.environ.get("PROMPTSPOOL_LLAMA_BIN_DIR")
    if override:
        if not (Path(override) / "llama-server").is_file():
            sys.exit(f"bench: no llama-server in PROMPTSPOOL_LLAMA_BIN_DIR={override}")
        return Path(override)
    version = importlib.metadata.version("llama-cpp-python")
    cuda = bool(llama_cpp.llama_supports_gpu_offload())
    root = cache_root() / f"llama.cpp-{version}-{'cuda' if cuda else 'cpu'}"
    build = root / "build"
    if not _has_targets(build / "bin"):
        build_tools(_sources(version, root), build, cuda)
    return build / "bin"


def _sources(version: str, root: Path) -> Path:
    """vendor/llama.cpp of llama-cpp-python's source distribution, at root/llama.cpp."""
    source = root / "llama.cpp"
    if (source / "CMakeLists.txt").is_file():
        return source
    sdist = root / "sdist"
    if not list(sdist.glob("*.tar.gz")):
        _progress(f"downloading llama-cpp-python {version}'s source distribution")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"llama-cpp-python=={version}",
             "--no-binary", ":all:", "--no-deps", "-d", str(sdist)],
            check=True,
        )  # fmt: skip
    _extract_vendor(next(sdist.glob("*.tar.gz")), source)
    return source


def _extract_vendor(archive: Path, dest: Path) -> None:
    """Unpack the archive's */vendor/llama.cpp/ tree into dest (whole, or not at all)."""
    with tempfile.TemporaryDirectory(dir=dest.parent) as scratch, tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in f"{m.name}/"]
        tar.extractall(scratch, members=members, filter="data")
        [vendor] = Path(scratch).glob("*/vendor/llama.cpp")
        shutil.rmtree(dest, ignore_errors=True)
        vendor.rename(dest)


def build_tools(source: Path, build: Path, cuda: bool) -> None:
    """Configure with Ninja (CUDA if asked) and build TARGETS; the output goes to build.log."""
    log = build.parent / "build.log"
    build.mkdir(parents=True, exist_ok=True)
    _progress(f"building {', '.join(TARGETS)} in {build} (minutes; log: {log})")
    configure = ["cmake", "-S", str(source), "-B", str(build), "-G", "Ninja", *CMAKE_OPTIONS]
    if cuda:
        configure.append("-DGGML_CUDA=ON")
    compile_ = ["cmake", "--build", str(build), "--target", *TARGETS]
    with log.open("w") as out:
        for command in (configure, compile_):
            subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=True)


def _progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
