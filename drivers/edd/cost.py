"""EDD's differentiable hardware cost in torch (dissertation eqs. 2.2-2.15).

Inputs are the relaxed choices: ``P`` (N x M) op probabilities per block (Gumbel-softmax of Theta,
eqs. 2.4-2.5), ``Q`` (N x Q) bit-width probabilities per block (of Phi, eqs. 2.2-2.3; on a GPU
one row for the whole network, 2.4.2) and the continuous parallel factors ``pf``. The tables are
the simulators' own (:mod:`dse.drivers.edd.tables`), so at one-hot ``P``/``Q`` the cost *is*
the simulator's cost at the same parallel factors (``recursive.cost_at``, ``pipelined.cost_at``,
the GPU roofline), not an approximation of it.

Recursive FPGA accelerator (eq. 2.6 latency, eqs. 2.10-2.12 resources). The IPs are the
simulator's layer types (``conv1x1``, ``dwconv5x5``, ...), so eq. 2.11's sharing runs over every
(block, op) whose layers use an IP, not only over one op across blocks:

* an IP runs at its widest user's bits (eq. 2.10); relaxed, ``Phi_ip = max over candidate
  layers on the IP of P_im * E_q[Phi]`` (exact at one-hot: Phi is non-decreasing in q);
* latency = sum over candidate layers of ``P_im * Phi_ip * 2**-pf_ip * work / clock`` (s);
* DSPs = sum over IPs of ``used_ip * Psi_ip * 2**pf_ip`` with ``used_ip`` eq. 2.11's
  ``tanh(sum of P_im over users)`` (``sharing = "tanh"``, the search), or ``1 - prod(1 - P_im)``
  (``"exact"``: the probability that some block uses it, exactly 0 or 1 at one-hot). IPs of the
  fixed layers (stem, head) are always used.

Pipelined FPGA accelerator (eqs. 2.7-2.9): one parallel factor per (block, op) shared by the op's
layers, one per fixed layer; each layer is a stage. The frame period is the maximum stage time,
relaxed by eq. 2.8's log-sum-exp made unit-safe: ``tau * s * log(sum exp(t / (tau * s)))`` with
``s`` the stage-time scale given by the caller (seconds) and ``tau = 0`` the hard maximum. DSPs
are summed (eq. 2.9).

GPU: latency = sum over q of ``Q_q * (fixed_q + sum_i sum_m P_im * T_imq)`` with T the calibrated
roofline seconds of each candidate at each precision (the GPU has no resource term).

The resource penalty of eq. 2.1 is :func:`resource_penalty`: ``beta * C**((RES - RES_ub) /
RES_ub)``, with the exponent normalised by the budget so that C is unit-free.
"""

from __future__ import annotations

from typing import Literal

import torch

from dse.drivers.edd.tables import FpgaTables, GpuTables

Sharing = Literal["tanh", "exact"]


def _t(x, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(x, dtype=like.dtype, device=like.device)


class FpgaCost:
    """Differentiable latency and DSPs of the ``mbconv`` space on an FPGA (see module doc)."""

    def __init__(self, tables: FpgaTables, dtype: torch.dtype = torch.float32):
        self.tables = tables
        z = torch.zeros((), dtype=dtype)
        self.block = torch.as_tensor(tables.block, dtype=torch.long)
        self.op = torch.as_tensor(tables.op, dtype=torch.long)
        self.ip = torch.as_tensor(tables.ip, dtype=torch.long)
        self.work = _t(tables.work, z)
        self.phi = _t(tables.phi, z)
        self.psi = _t(tables.psi, z)
        self.fixed_ip = torch.as_tensor(tables.fixed_ip, dtype=torch.long)
        self.fixed_work = _t(tables.fixed_work, z)
        self.fixed_phi = _t(tables.fixed_phi, z)
        self.fixed_psi = _t(tables.fixed_psi, z)
        self.uses = torch.as_tensor(tables.uses)  # (N, M, IPs)
        self.fixed_uses = torch.as_tensor(tables.fixed_uses)
        self.n_ip = len(tables.ip_names)
        self.clock_hz = tables.clock_hz

    def _per_ip_max(self, values: torch.Tensor, fixed: torch.Tensor) -> torch.Tensor:
        """Max over the rows of each IP (candidate rows weighted, fixed rows as they are)."""
        rows = torch.cat([values, fixed])
        ips = torch.cat([self.ip, self.fixed_ip])
        out = torch.zeros(self.n_ip, dtype=values.dtype)
        return out.scatter_reduce(0, ips, rows, reduce="amax", include_self=True)

    def recursive(
        self, P: torch.Tensor, Q: torch.Tensor, pf: torch.Tensor, sharing: Sharing = "tanh"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(latency seconds, DSPs) of the recursive accelerator; ``pf`` has one entry per IP
        (``tables.ip_names``)."""
        weight = P[self.block, self.op]  # (R,)
        q = Q[self.block]  # (R, Q)
        phi_ip = self._per_ip_max(weight * (q * self.phi).sum(1), self.fixed_phi)
        psi_ip = self._per_ip_max(weight * (q * self.psi).sum(1), self.fixed_psi)
        inv_lanes = torch.exp2(-pf)
        cycles = (weight * self.work * phi_ip[self.ip] * inv_lanes[self.ip]).sum() + (
            self.fixed_work * phi_ip[self.fixed_ip] * inv_lanes[self.fixed_ip]
        ).sum()
        users = P[:, :, None] * self.uses  # (N, M, IPs)
        if sharing == "tanh":  # eq. 2.11
            used = torch.tanh(users.sum((0, 1)))
        elif sharing == "exact":
            used = 1 - torch.prod(1 - users, dim=0).prod(dim=0)
        else:
            raise ValueError(f"sharing: {sharing!r} is not allowed; allowed values: tanh, exact")
        used = torch.where(self.fixed_uses, torch.ones_like(used), used)
        dsp = (used * psi_ip * torch.exp2(pf)).sum()  # eq. 2.12
        return cycles / self.clock_hz, dsp

    def pipelined(
        self,
        P: torch.Tensor,
        Q: torch.Tensor,
        pf: torch.Tensor,
        pf_fixed: torch.Tensor,
        tau: float = 0.0,
        scale_s: float = 1.0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(frame period seconds, frame latency seconds, DSPs) of the pipelined accelerator;
        ``pf`` is (N, M), ``pf_fixed`` one per fixed layer."""
        weight = P[self.block, self.op]
        q = Q[self.block]
        stage = (
            weight
            * (q * self.phi).sum(1)
            * self.work
            * torch.exp2(-pf[self.block, self.op])
            / self.clock_hz
        )
        fixed = self.fixed_phi * self.fixed_work * torch.exp2(-pf_fixed) / self.clock_hz
        stages = torch.cat([stage, fixed])
        period = smooth_max(stages, tau, scale_s)  # eqs. 2.7-2.8
        dsp = (weight * (q * self.psi).sum(1) * torch.exp2(pf[self.block, self.op])).sum() + (
            self.fixed_psi * torch.exp2(pf_fixed)
        ).sum()  # eq. 2.9
        return period, stages.sum(), dsp


class GpuCost:
    """Differentiable GPU latency of the ``mbconv`` space (see module doc)."""

    def __init__(self, tables: GpuTables, dtype: torch.dtype = torch.float32):
        self.tables = tables
        self.block_s = torch.as_tensor(tables.block_s, dtype=dtype)
        self.fixed_s = torch.as_tensor(tables.fixed_s, dtype=dtype)

    def latency(self, P: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Seconds of one inference: ``P`` (N, M), ``q`` (Q,) the network's precision."""
        per_q = self.fixed_s + torch.einsum("nm,nmq->q", P, self.block_s)
        return (q * per_q).sum()


def smooth_max(x: torch.Tensor, tau: float, scale: float = 1.0) -> torch.Tensor:
    """``max(x)`` for ``tau = 0``, else eq. 2.8's log-sum-exp at temperature ``tau`` in units of
    ``scale`` (the same units as x, so the result is in x's units and >= max(x))."""
    if tau == 0:
        return x.max()
    t = tau * scale
    return t * torch.logsumexp(x / t, dim=0)


def resource_penalty(res: torch.Tensor, budget: float, beta: float, base: float) -> torch.Tensor:
    """Eq. 2.1's ``beta * C**(RES - RES_ub)``, the exponent in units of the budget."""
    return beta * torch.pow(_t(base, res), (res - budget) / budget)
