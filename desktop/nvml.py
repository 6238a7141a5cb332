"""VRAM use from NVIDIA's management library (NVML) through ctypes, when the driver has it."""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_unavailable = False


class _Memory(ctypes.Structure):
    _fields_ = [
        ("total", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    ]


@dataclass(frozen=True)
class GpuMemory:
    index: int
    name: str
    used: int
    total: int

    def __str__(self) -> str:
        gib = 1024**3
        return f"{self.name}: {self.used / gib:.1f} / {self.total / gib:.1f} GiB"


def _library() -> ctypes.CDLL | None:
    global _lib, _unavailable  # noqa: PLW0603 - one library handle per process
    with _lock:
        if _lib is None and not _unavailable:
            try:
                lib = ctypes.CDLL("libnvidia-ml.so.1")
                if lib.nvmlInit_v2() != 0:
                    raise OSError("nvmlInit failed")
                _lib = lib
            except (OSError, AttributeError):
                _unavailable = True
        return _lib


def gpu_memory() -> list[GpuMemory] | None:
    """Used and total memory of each GPU; None where NVML is not available. Blocking (ms)."""
    lib = _library()
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
