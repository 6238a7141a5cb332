"""What this machine offers llama.cpp: CPU threads, free memory, GPUs (ggml's view and NVML's).

llama_cpp is imported inside the functions that need it, so that the desktop can read VRAM
through NVML without loading llama.cpp into the window's process.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from worker.engine.api import GpuStatus, LoadOptions

_GPU_TYPES = (1, 2)  # GGML_BACKEND_DEVICE_TYPE_GPU, _IGPU


def thread_counts(options: LoadOptions) -> tuple[int, int]:
    """CPU threads for generating and for reading prompts: options.n_threads for both, else
    one per physical core for generation (as llama.cpp's own tools choose; more, on SMT
    siblings, only contend for the same memory bandwidth) and every logical core for prompts.

    (llama-cpp-python's default of half the logical cores leaves half of a machine
    without SMT idle: on 2 cores, 132 instead of 222 tokens/s for a 110M-parameter Q4_K_M.)
    """
    if options.n_threads:
        return options.n_threads, options.n_threads
    logical = os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or max(logical // 2, 1)
    return physical, logical


def gpu_offload_supported() -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def gpu_present() -> bool:
    """An NVIDIA or AMD compute device node exists (a GPU that llama.cpp could use)."""
    return any(Path(node).exists() for node in ("/dev/nvidia0", "/dev/kfd"))


def gpu_status(model: Any, options: LoadOptions) -> GpuStatus:
    """Whether the loaded `model` (a llama_model pointer) really runs layers on a GPU."""
    import llama_cpp

    total = int(llama_cpp.llama_model_n_layer(model)) + 1  # + output layer
    if not gpu_offload_supported():
        if gpu_present():
            reason = (
                "a GPU is present but llama.cpp was built for the CPU only "
                "(rebuild it: PROMPTSPOOL_CUDA=1 make clean run)"
            )
        else:
            reason = "CPU only: llama.cpp was built without GPU support and no GPU was found"
        return GpuStatus(False, 0, total, reason)
    wanted = total if options.n_gpu_layers < 0 else min(options.n_gpu_layers, total)
    reason = "" if wanted else "n_gpu_layers is 0"
    return GpuStatus(True, wanted, total, reason)


def memory_room() -> int | None:
    """Bytes this process could still allocate (free RAM, or its address-space limit); Linux."""
    try:
        meminfo = Path("/proc/meminfo").read_text(encoding="ascii")
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return None
    fields = {
        line.split(":")[0]: int(line.split()[1]) * 1024
        for line in (meminfo + status).splitlines()
        if line.endswith(" kB")
    }
    room = fields.get("MemAvailable")
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit != resource.RLIM_INFINITY and "VmSize" in fields:
        left = max(0, limit - fields["VmSize"])
        room = left if room is None else min(room, left)
    return room


# --- ggml's devices ----------------------------------------------------------------------


def free_gpu_memory() -> int | None:
    """Free bytes summed over llama.cpp's GPU devices (None if it cannot tell)."""
    try:
        base, registry = _ggml()
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        found = 0
        for i in range(registry.ggml_backend_dev_count()):
            device = registry.ggml_backend_dev_get(i)
            if base.ggml_backend_dev_type(device) in _GPU_TYPES:
                base.ggml_backend_dev_memory(device, ctypes.byref(free), ctypes.byref(total))
                found += free.value
    except (OSError, AttributeError, StopIteration):
        return None
    return found or None


@functools.cache
def _ggml() -> tuple[Any, Any]:
    """libggml-base (devices) and libggml (their registry), as llama-cpp-python loaded them."""
    import llama_cpp

    llama_cpp.llama_backend_init()
    libdir = Path(llama_cpp.__file__).parent / "lib"
    base = ctypes.CDLL(str(next(libdir.glob("libggml-base.*"))))
    registry = ctypes.CDLL(str(next(libdir.glob("libggml.*"))))
    registry.ggml_backend_dev_count.restype = ctypes.c_size_t
    registry.ggml_backend_dev_get.argtypes = [ctypes.c_size_t]
    registry.ggml_backend_dev_get.restype = ctypes.c_void_p
    base.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    base.ggml_backend_dev_type.restype = ctypes.c_int
    size_p = ctypes.POINTER(ctypes.c_size_t)
    base.ggml_backend_dev_memory.argtypes = [ctypes.c_void_p, size_p, size_p]
    return base, registry


# --- NVML -------------------------------------------------------------------------------

_nvml_lock = threading.Lock()
_nvml_lib: ctypes.CDLL | None = None
_nvml_unavailable = False


class _Memory(ctypes.Structure):
    _fields_ = [
        ("total", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    ]


@dataclass(frozen=True)
class GpuMemory:
    """One GPU's memory as NVML reports it (for the status bar)."""

    index: int
    name: str
    used: int
    total: int

    def __str__(self) -> str:
        gib = 1024**3
        return f"{self.name}: {self.used / gib:.1f} / {self.total / gib:.1f} GiB"


def _nvml() -> ctypes.CDLL | None:
    """NVIDIA's management library, initialised once per process (None without a driver)."""
    global _nvml_lib, _nvml_unavailable  # noqa: PLW0603 - one library handle per process
    with _nvml_lock:
        if _nvml_lib is None and not _nvml_unavailable:
            try:
                lib = ctypes.CDLL("libnvidia-ml.so.1")
                if lib.nvmlInit_v2() != 0:
                    raise OSError("nvmlInit failed")
                _nvml_lib = lib
            except (OSError, AttributeError):
                _nvml_unavailable = True
        return _nvml_lib


def gpu_memory() -> list[GpuMemory] | None:
    """Used and total memory of each GPU; None where NVML is not available. Blocking (ms)."""
    lib = _nvml()
    if lib is None:
        return None
    count = ctypes.c_uint(0)
    if lib.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
        return None
    result = []
    for index in range(count.value):
        handle = ctypes.c_void_p()
        memory = _Memory()
        name = ctypes.create_string_buffer(96)
        if lib.nvmlDeviceGetHandleByIndex_v2(index, ctypes.byref(handle)) != 0:
            continue
        if lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory)) != 0:
            continue
        lib.nvmlDeviceGetName(handle, name, ctypes.c_uint(len(name)))
        label = name.value.decode(errors="replace") or f"GPU {index}"
        result.append(GpuMemory(index, label, int(memory.used), int(memory.total)))
    return result
