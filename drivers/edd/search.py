"""The EDD co-search loop (dissertation eq. 2.1, section 2.5) over the ``mbconv`` space.

Each epoch alternates, batch by batch, a weight step (SGD on the training split, Theta, Phi and
the parallel factors fixed) and an architecture step (Adam on the validation split: Theta, Phi
and pf together) on

    L = CE x (1 + alpha x Perf / Perf_0) + beta x C ** ((RES - RES_ub) / RES_ub)      (eq. 2.1)

``Perf`` is the latency (GPU, recursive FPGA; eq. 2.6) or the frame period (pipelined FPGA;
eqs. 2.7-2.8) from :mod:`cost`, normalised by its value at initialisation ``Perf_0`` (eq. 2.6's
alpha "scales Perf_loss to the magnitude of Acc_loss"); the ``1 +`` keeps ``alpha = 0`` the
accuracy-only search (in eq. 2.1's bare product it would zero the loss). RES is the DSP count
(FPGA only; the GPU has no resource term, 2.4.2). After each epoch the most probable choices are
derived (argmax of Theta and Phi) and re-tuned by the simulator's own allocator at the
deployment shape; the last one is retrained from scratch for the reported test accuracy.

Where the dissertation is silent the settings are FBNet's (Wu et al. 2019, section 4.1): Gumbel
temperature 5.0 annealed by ``exp(-0.045)`` per epoch, Adam at 0.01 for the architecture, SGD
with momentum 0.9 and weight decay 1e-4 (learning rate 0.1) for the weights, weights trained
alone for the first epochs (``warmup_epochs``). The parallel factors start at ``log2(RES_ub /
IPs)`` (recursive) or ``log2(RES_ub / (M N))`` (pipelined), as section 2.5 says.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dse.drivers.edd.cost import FpgaCost, GpuCost, resource_penalty
from dse.drivers.edd.supernet import Supernet
from dse.drivers.edd.tables import (
    MBConvChainSpace,
    candidate_ops,
    derive,
    fpga_tables,
    gpu_tables,
    one_hot,
    skippable,
)
from dse.training.digits import Digits, load_digits

Target = Literal["gpu", "fpga-recursive", "fpga-pipelined"]


@dataclass(frozen=True)
class EddConfig:
    """Settings of one co-search (defaults: the dissertation's or FBNet's, see module doc)."""

    epochs: int = 6
    warmup_epochs: int = 1
    alpha: float = 1.0
    beta: float = 1.0
    penalty_base: float = 10.0  # C of eq. 2.1
    tau0: float = 5.0
    tau_decay: float = 0.045
    weight_lr: float = 0.1
    arch_lr: float = 0.01
    pf_lr: float = 0.05
    batch_size: int = 64
    width: float = 0.25
    resolution: int = 32
    smooth_max_tau: float = 0.1  # eq. 2.8's temperature, in units of the initial period
    sharing: Literal["tanh", "exact"] = "tanh"  # eq. 2.11 during the search
    retrain_epochs: int = 8
    seed: int = 0

    def __post_init__(self):
        for name in ("epochs", "batch_size", "retrain_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(
                f"warmup_epochs: must be in [0, epochs), got {self.warmup_epochs} "
                f"(epochs {self.epochs})"
            )
        for name in ("alpha", "beta", "smooth_max_tau"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("tau0", "weight_lr", "arch_lr", "pf_lr", "penalty_base", "width"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be > 0, got {getattr(self, name)}")
        if self.sharing not in ("tanh", "exact"):
            raise ValueError(f"sharing: {self.sharing!r} is not allowed; allowed: tanh, exact")

    def tau(self, epoch: int) -> float:
        """Gumbel-softmax temperature of ``epoch`` (FBNet: 5.0 x exp(-0.045 epoch))."""
        return self.tau0 * math.exp(-self.tau_decay * epoch)


@dataclass(frozen=True)
class EpochResult:
    """What one epoch found: its derived architecture and the supernet's view of it."""

    epoch: int
    tau: float
    arch: dict[str, Any]
    train_loss: float
    val_accuracy: float  # supernet, expected (noise-free) choices
    expected_perf_s: float  # relaxed latency (or period) at the expected choices
    expected_dsp: float  # relaxed DSPs (eq. 2.11 sharing), 0 on a GPU
    derived_perf_s: float  # the derived architecture at the search's parallel factors
    derived_dsp: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _gumbel(logits: torch.Tensor, tau: float, gen: torch.Generator) -> torch.Tensor:
    """Gumbel-softmax sample over the last axis (seeded by ``gen``)."""
    u = torch.rand(logits.shape, generator=gen).clamp(1e-10, 1 - 1e-10)
    return torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=-1)


class EddSearch:
    """One co-search: the supernet, its relaxed variables, the cost and their optimisers.

    ``simulator``: the configured FPGA simulator (its board, DSP budget, Phi/Psi tables and
    architecture; ``fpga-recursive`` or ``fpga-pipelined``) or GPU simulator (its calibrated
    device). :meth:`state_dict` / :meth:`load_state_dict` checkpoint everything, RNG included,
    so a resumed search continues exactly."""

    def __init__(self, space: MBConvChainSpace, simulator: Any, config: EddConfig):
        self.space, self.sim, self.config = space, simulator, config
        self.target: Target = (
            "gpu" if space.target == "gpu" else ("fpga-" + simulator.architecture)  # type: ignore[assignment]
        )
        torch.manual_seed(config.seed)
        self.gen = torch.Generator().manual_seed(config.seed)
        self.data: Digits = load_digits(config.resolution, config.seed)
        self.net = Supernet(space, self.data.in_channels, self.data.num_classes, config.width)
        n, m = space.num_blocks, len(candidate_ops(space))
        self.skip_mask = torch.zeros(n, m)
        self.skip_mask[~torch.as_tensor(skippable(space)), -1] = -math.inf
        self.theta = torch.zeros(n, m, requires_grad=True)
        n_bits = len(self.net.bits)
        self.phi = torch.zeros((n, n_bits) if space.target == "fpga" else (n_bits,))
        self.phi.requires_grad_(True)
        arch_params = [self.theta, self.phi]
        if self.target == "gpu":
            self.cost: Any = GpuCost(gpu_tables(space, simulator))
            self.budget = math.inf
            self.pf = torch.zeros(0)
        else:
            tables = fpga_tables(space, simulator)
            self.cost = FpgaCost(tables)
            self.budget = float(simulator.dsp_budget)
            if self.target == "fpga-recursive":
                pf0 = math.log2(self.budget / len(tables.ip_names))
                self.pf = torch.full((len(tables.ip_names),), pf0)
            else:
                pf0 = math.log2(self.budget / (m * n))
                self.pf = torch.full((n * m + len(tables.fixed_ip),), pf0)
            self.pf.requires_grad_(True)
        self.w_opt = torch.optim.SGD(
            self.net.parameters(), lr=config.weight_lr, momentum=0.9, weight_decay=1e-4
        )
        self.a_opt = torch.optim.Adam(arch_params, lr=config.arch_lr)
        self.pf_opt = torch.optim.Adam([self.pf], lr=config.pf_lr) if self.pf.numel() else None
        self.perf0 = 0.0  # set next: Perf at initialisation (the pipelined one a hard max)
        with torch.no_grad():
            self.perf0 = float(self._perf(*self._expected())[0])
        self.epoch = 0

    # -- the relaxed choices and their cost ---------------------------------------------------
    def _expected(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise-free choice probabilities (softmax of Theta, Phi)."""
        return torch.softmax(self.theta + self.skip_mask, -1), torch.softmax(self.phi, -1)

    def _sample(self, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            _gumbel(self.theta + self.skip_mask, tau, self.gen),
            _gumbel(self.phi, tau, self.gen),
        )

    def _perf(self, P: torch.Tensor, Q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(Perf seconds, DSPs) at choices P, Q and the current parallel factors."""
        if self.target == "gpu":
            return self.cost.latency(P, Q), torch.zeros(())
        pf = self.pf.clamp_min(0)
        if self.target == "fpga-recursive":
            return self.cost.recursive(P, Q, pf, self.config.sharing)
        n, m = P.shape
        tau = self.config.smooth_max_tau if self.perf0 else 0.0
        period, _, dsp = self.cost.pipelined(
            P, Q, pf[: n * m].reshape(n, m), pf[n * m :], tau, self.perf0 or 1.0
        )
        return period, dsp

    def loss(self, ce: torch.Tensor, P: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
        """Eq. 2.1 (see the module doc for the normalisation)."""
        perf, dsp = self._perf(P, Q)
        c = self.config
        total = ce * (1 + c.alpha * perf / self.perf0)
        if math.isfinite(self.budget):
            total = total + resource_penalty(dsp, self.budget, c.beta, c.penalty_base)
        return total

    # -- one epoch ---------------------------------------------------------------------------
    def run_epoch(self) -> EpochResult:
        """Train one epoch (weights, then, past the warm-up, architecture steps in between)."""
        c, epoch = self.config, self.epoch
        tau = c.tau(epoch)
        search = epoch >= c.warmup_epochs
        self.net.train()
        val_batches = self.data.val.batches(c.batch_size, self.gen)
        losses = []
        n_batches = math.ceil(len(self.data.train.y) / c.batch_size)
        for x, y in tqdm(
            self.data.train.batches(c.batch_size, self.gen),
            total=n_batches,
            desc=f"edd epoch {epoch + 1}/{c.epochs}",
            leave=False,
            disable=None,  # a bar on a terminal, nothing in a log
        ):
            P, Q = self._sample(tau)
            self.w_opt.zero_grad()
            ce = F.cross_entropy(self.net(x, P.detach(), Q.detach()), y)
            ce.backward()
            self.w_opt.step()
            losses.append(float(ce.detach()))
            if not search:
                continue
            batch = next(val_batches, None)
            if batch is None:
                val_batches = self.data.val.batches(c.batch_size, self.gen)
                batch = next(val_batches)
            vx, vy = batch
            P, Q = self._sample(tau)
            self.a_opt.zero_grad()
            if self.pf_opt is not None:
                self.pf_opt.zero_grad()
            self.loss(F.cross_entropy(self.net(vx, P, Q), vy), P, Q).backward()
            self.a_opt.step()
            if self.pf_opt is not None:
                self.pf_opt.step()
        self.epoch += 1
        return self._result(epoch, tau, float(np.mean(losses)))

    def _result(self, epoch: int, tau: float, train_loss: float) -> EpochResult:
        with torch.no_grad():
            P, Q = self._expected()
            perf, dsp = self._perf(P, Q)
            arch = self.derived()
            hot = [torch.as_tensor(a, dtype=torch.float32) for a in one_hot(self.space, arch)]
            d_perf, d_dsp = self._perf(*hot)
            self.net.eval()
            correct = sum(
                int((self.net(x, P, Q).argmax(1) == y).sum()) for x, y in self.data.val.batches(256)
            )
        return EpochResult(
            epoch,
            tau,
            arch,
            train_loss,
            correct / len(self.data.val.y),
            float(perf),
            float(dsp),
            float(d_perf),
            float(d_dsp),
        )

    def derived(self) -> dict[str, Any]:
        """The most probable architecture (argmax of Theta and Phi)."""
        P, Q = self._expected()
        return derive(self.space, P.detach().numpy(), Q.detach().numpy())

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "net": self.net.state_dict(),
            "theta": self.theta.detach().clone(),
            "phi": self.phi.detach().clone(),
            "pf": self.pf.detach().clone(),
            "w_opt": self.w_opt.state_dict(),
            "a_opt": self.a_opt.state_dict(),
            "pf_opt": None if self.pf_opt is None else self.pf_opt.state_dict(),
            "gen": self.gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "perf0": self.perf0,
            "config": asdict(self.config),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["config"] != asdict(self.config):
            raise ValueError("checkpoint: written by a search with other EDD settings")
        self.epoch = int(state["epoch"])
        self.net.load_state_dict(state["net"])
        with torch.no_grad():
            self.theta.copy_(state["theta"])
            self.phi.copy_(state["phi"])
            self.pf.copy_(state["pf"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        if self.pf_opt is not None:
            self.pf_opt.load_state_dict(state["pf_opt"])
        self.gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        self.perf0 = float(state["perf0"])


def retrain(space: MBConvChainSpace, arch: dict[str, Any], config: EddConfig) -> float:
    """Test accuracy of ``arch`` trained from scratch (its one-hot supernet path, fresh weights,
    ``retrain_epochs`` epochs of SGD on the training split; seeded)."""
    torch.manual_seed(config.seed + 1)
    gen = torch.Generator().manual_seed(config.seed + 1)
    data = load_digits(config.resolution, config.seed)
    net = Supernet(space, data.in_channels, data.num_classes, config.width)
    P, Q = (torch.as_tensor(a, dtype=torch.float32) for a in one_hot(space, arch))
    opt = torch.optim.SGD(net.parameters(), lr=config.weight_lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.retrain_epochs)
    for _ in range(config.retrain_epochs):
        net.train()
        for x, y in data.train.batches(config.batch_size, gen):
            opt.zero_grad()
            F.cross_entropy(net(x, P, Q), y).backward()
            opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        correct = sum(int((net(x, P, Q).argmax(1) == y).sum()) for x, y in data.test.batches(256))
    return correct / len(data.test.y)
