"""The ASIC model on Eyeriss v1's published runs, per layer, and what the global buffer buys.

Prints, for AlexNet's convolution layers at batch 4 and VGG-16's at batch 3
(:mod:`dse.simulators.asic.eyeriss`), each layer's active PEs, latency, DRAM traffic and
energy on the ``Eyeriss-v1`` entry of the catalog, the totals against the published figures,
and then the same totals with the global buffer (``glb_kb``) from a quarter to eight times
Eyeriss' 108 KB: the traffic a smaller buffer costs, as a hardware search would see it.
About a second.
"""

from __future__ import annotations

import json
import tempfile
import tomllib
from importlib.resources import files
from pathlib import Path

import numpy as np

from dse.simulators.asic.eyeriss import EYERISS_V1
from dse.simulators.asic.plugin import AsicSimulator

BUFFERS_KB = (27, 54, 108, 216, 432, 864)


def run(network: str, sim: AsicSimulator) -> dict[str, np.ndarray]:
    graphs = EYERISS_V1[network].graphs()
    return {**sim.totals(graphs), **sim.evaluate_population(graphs)}


def per_layer(network: str) -> None:
    published = EYERISS_V1[network]
    sim = AsicSimulator("Eyeriss-v1", batch_size=published.batch, calibration="none")
    r = run(network, sim)
    print(f"{network}, batch {published.batch}, {sim.device.name}:")
    print("  layer  active PEs    ms   DRAM MB  words/MAC  energy mJ")
    for i in range(len(published.layers)):
        per_mac = r["dram_words"][i] / r["macs"][i]
        print(
            f"  {i + 1:5d}  {r['active_pes'][i]:10.1f} {r['asic_latency_ms'][i]:6.1f} "
            f"{r['asic_dram_mb'][i]:8.1f}  {per_mac:9.4f}  {r['asic_energy_mj'][i]:9.2f}"
        )
    ms, per_mac = r["asic_latency_ms"].sum(), r["dram_words"].sum() / r["macs"].sum()
    print(
        f"  total: {ms:.1f} ms (published {published.ms_per_batch:.1f}, "
        f"{ms / published.ms_per_batch:.2f}x), {per_mac:.4f} DRAM words per MAC (published "
        f"{published.dram_per_mac}, after compression; {per_mac / published.dram_per_mac:.2f}x), "
        f"{r['asic_energy_mj'].sum() / ms * 1e3:.0f} mW"
    )


def buffer_variants(folder: Path) -> Path:
    """A user's devices file: the catalog's Eyeriss v1 entry once per buffer size, as
    ``Eyeriss-v1-<KB>KB`` (how a hardware search would pose them)."""
    catalog = tomllib.loads((files("dse.catalogs") / "devices.toml").read_text())
    entry = {k: v for k, v in catalog["Eyeriss-v1"].items() if k != "source"}
    lines = []
    for kb in BUFFERS_KB:
        lines.append(f'["Eyeriss-v1-{kb}KB"]')
        lines += [f"{k} = {json.dumps(v)}" for k, v in {**entry, "glb_kb": kb}.items()]
        lines.append("")
    path = folder / "devices.toml"
    path.write_text("\n".join(lines))
    return path


def buffer_sweep() -> None:
    print("global buffer sweep (totals; 108 KB is Eyeriss'):")
    print("  network  glb KB   DRAM MB       ms  energy mJ")
    with tempfile.TemporaryDirectory() as folder:
        devices = buffer_variants(Path(folder))
        for network, published in EYERISS_V1.items():
            for kb in BUFFERS_KB:
                sim = AsicSimulator(
                    f"Eyeriss-v1-{kb}KB", published.batch, "none", devices_file=str(devices)
                )
                r = run(network, sim)
                print(
                    f"  {network:7s} {kb:7d} {r['asic_dram_mb'].sum():9.1f} "
                    f"{r['asic_latency_ms'].sum():8.1f} {r['asic_energy_mj'].sum():10.1f}"
                )


def main() -> None:
    for network in EYERISS_V1:
        per_layer(network)
    buffer_sweep()


if __name__ == "__main__":
    main()
