"""FPGA accelerator simulators of EDD (dissertation 2.4.1): board catalog, per-layer model
(eqs. 2.13-2.15), recursive and pipelined architectures with DSP allocation, and the ``fpga``
metric provider."""
