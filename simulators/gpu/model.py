"""One GPU with one calibration: the cost model every GPU path (graphs, LLMs, DES) calls.

:class:`GpuCostModel` turns arrays of kernels (class, precision, FLOPs, bytes, kernel count)
into seconds with the roofline of :mod:`roofline`, so the analytic paths and the discrete-event
simulators share one set of numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dse.catalogs.devices import BYTES, PRECISIONS, Device, get_device
from dse.simulators.gpu.roofline import OP_CLASSES, Calibration, kernel_seconds, resolve_calibration

CLASS_INDEX = {c: i for i, c in enumerate(OP_CLASSES)}
PRECISION_NAMES = tuple(PRECISIONS)
PRECISION_INDEX = {p: i for i, p in enumerate(PRECISION_NAMES)}
#: bytes per element, indexed like PRECISION_NAMES
PRECISION_BYTES = np.array([BYTES[p] for p in PRECISION_NAMES], dtype=float)


def precision_of_bits(bits: int) -> str:
    """The precision an IR node of ``bits`` runs at under ``precision = "auto"``."""
    if bits >= 32:
        return "fp32"
    if bits >= 16:
        return "fp16"
    if bits > 4:
        return "int8"
    return "int4"


@dataclass
class GpuCostModel:
    """Device + calibration. ``seconds`` costs kernels given as parallel numpy arrays."""

    device: Device
    calibration: Calibration = field(default_factory=Calibration)
    launch_overhead_s: float | None = None  # overrides every class's overhead when set

    def __post_init__(self):
        eta_c, eta_m, over = self.calibration.arrays(self.device)
        if self.launch_overhead_s is not None:
            if self.launch_overhead_s < 0:
                raise ValueError(
                    f"launch_overhead_us: must be >= 0, got {self.launch_overhead_s * 1e6}"
                )
            over = np.full_like(over, self.launch_overhead_s)
        self._eta_c, self._eta_m, self._over = eta_c, eta_m, over
        self._peaks = np.array([self.device.peak(p) for p in PRECISION_NAMES])

    @classmethod
    def create(
        cls,
        device: str | Device = "A100-80GB-PCIe",
        calibration: str | Calibration | None = "auto",
        devices_file: str | None = None,
        launch_overhead_us: float | None = None,
    ) -> GpuCostModel:
        dev = device if isinstance(device, Device) else get_device(device, devices_file)
        return cls(
            dev,
            resolve_calibration(calibration, dev),
            None if launch_overhead_us is None else launch_overhead_us * 1e-6,
        )

    @property
    def bandwidth(self) -> float:
        return self.device.memory_bandwidth

    def peak(self, precision_idx) -> np.ndarray:
        """Peak FLOP/s for precision indices (PRECISION_NAMES positions)."""
        return self._peaks[np.asarray(precision_idx)]

    def overhead(self, op_class) -> np.ndarray:
        """Per-kernel fixed seconds (launch and dispatch) for class indices."""
        return self._over[np.asarray(op_class)]

    def seconds(
        self, op_class, precision, flops, bytes_, n_kernels=1, calibrated: bool = True
    ) -> np.ndarray:
        """Seconds of ``n_kernels`` equal kernels sharing ``flops`` and ``bytes_`` (arrays of
        class indices, precision indices, FLOPs, bytes, counts; they broadcast). With
        ``calibrated=False``: the bare roofline (efficiency 1, no overhead)."""
        op_class = np.asarray(op_class)
        n = np.asarray(n_kernels, dtype=float)
        per = np.maximum(n, 1)
        peak = self.peak(precision)
        if not calibrated:
            return n * kernel_seconds(
                np.asarray(flops) / per, np.asarray(bytes_) / per, peak, self.bandwidth
            )
        return n * kernel_seconds(
            np.asarray(flops) / per,
            np.asarray(bytes_) / per,
            peak,
            self.bandwidth,
            self._eta_c[op_class],
            self._eta_m[op_class],
            self._over[op_class],
        )

    def attainable(self, precision, flops, bytes_) -> np.ndarray:
        """Roofline FLOP/s of kernels: min(peak, OI x bandwidth)."""
        oi = np.asarray(flops, dtype=float) / np.maximum(np.asarray(bytes_, dtype=float), 1e-30)
        return np.minimum(self.peak(precision), oi * self.bandwidth)
