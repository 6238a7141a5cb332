"""Measures how late a 10 ms timer fires: the Qt event loop's stalls (for the benchmark)."""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Qt, QTimer


class StallMeter(QObject):
    """A precise timer; each tick records how much later than its interval it came (ms).

    `busy` holds the GUI thread's own CPU time between ticks: a stall with little busy time
    was the process waiting for a CPU (or the GIL), not the loop running slow code.
    """

    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.interval_ms = interval_ms
        self.stalls: list[float] = []
        self.busy: list[float] = []
        self._last = 0.0
        self._cpu = 0.0
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.clear()
        self._timer.start()

    def clear(self) -> None:
        self.stalls.clear()
        self.busy.clear()
        self._last = time.perf_counter()
        self._cpu = time.thread_time()

    def stop(self) -> None:
        self._timer.stop()

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        self.stalls.append(max(0.0, (now - self._last) * 1000 - self.interval_ms))
        self.busy.append((cpu - self._cpu) * 1000)
        self._last, self._cpu = now, cpu
