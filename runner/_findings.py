"""Findings: re-test every claim of the study through the runner, with verdicts computed
from the data by the rules of :mod:`runner._verdicts`.

A protocol (:class:`Protocol`) names every config that is trained: the L2 and L1 grids,
the sample-count and width sweeps, each over several seeds and under SGD and Adam. All of
it goes through :func:`runner.run_configs` (the same runner and results cache as the app
and the CLI); the verdicts and the evidence behind them are stored as one ``findings``
entry, so a page that finds it loads at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from typing import Any, Callable, Sequence

import numpy as np

from cache import ResultStore
from runner import _run
from runner._config import ExperimentConfig, Limits, Network, validate_config
from runner._types import Progress, ProgressFn, Stage
from runner._verdicts import CLAIMS, RULES, Verdict

FINDINGS_VERSION = 1

# Claims whose statistic comes from trained networks: judged per optimizer.
TRAINING_CLAIMS = ("l2_lowers_lambda_max", "l1_lowers_lambda_max", "lambda_max_falls_min_rises",
                   "min_coincides_with_overfitting", "higher_l2_sharper_decline",
                   "width_dip_rise_flatten", "cdf_saturates_late")


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Every setting the findings are computed from.

    Attributes:
      name: "full" or "quick".
      base: the shared config (width, n, epochs, batch, top-k); optimizer and lr come from
        ``optimizers``, reg and seed from the grids.
      seeds: seeds of every training statistic (≥ 3).
      optimizers: optimizer → learning rate.
      l2_grid, l1_grid: regularization strengths (0 = unregularized reference).
      ns: training-set sizes of the n sweep (SGD; the spectrum at the final epoch and at init).
      widths: the width sweep (log2 grid).
    """

    name: str
    base: ExperimentConfig
    seeds: tuple[int, ...]
    optimizers: tuple[tuple[str, float], ...]
    l2_grid: tuple[float, ...]
    l1_grid: tuple[float, ...]
    ns: tuple[int, ...]
    widths: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["base"] = self.base.to_dict()
        d["optimizers"] = dict(self.optimizers)
        return d

    @property
    def key(self) -> str:
        """A short hash of the whole protocol (the findings' cache key)."""
        text = json.dumps({**self.to_json(), "v": FINDINGS_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def protocol(name: str, limits: Limits, network: Network = Network()) -> Protocol:
    """The ``full`` protocol (the study's grids) or the ``quick`` one (smaller net, fewer
    epochs and grid points: minutes on 2 cores), on ``network`` (default: the study's
    one-hidden-layer MLP on the bundled MNIST), validated against ``limits``.

    Deeper MLPs keep the MLP grids. The CNN's kernel costs far more per sample and per
    channel (every matvec is a pass of two conv layers over 28×28 maps), so its grids are
    smaller — fewer channels, samples and epochs — and say so in the caption.
    """
    if name not in ("full", "quick"):
        raise ValueError(f"protocol={name!r}: expected 'full' or 'quick'")
    if network.arch == "cnn":
        if name == "full":
            base = dict(width=16, n_train=400, n_val=200, epochs=20, batch_size=50, top_k=10,
                        patience=5)
            grids = dict(l2_grid=(0.0, 1e-4, 1e-3, 1e-2, 1e-1), l1_grid=(0.0, 1e-4, 1e-3, 1e-2, 1e-1),
                         ns=(100, 200, 400, 800), widths=(1, 2, 4, 8, 16, 32))
        else:
            base = dict(width=4, n_train=100, n_val=100, epochs=10, batch_size=25, top_k=10,
                        patience=3)
            grids = dict(l2_grid=(0.0, 1e-3, 1e-2, 1e-1), l1_grid=(0.0, 1e-3, 1e-2, 1e-1),
                         ns=(50, 100, 200, 400), widths=(1, 2, 4, 8, 16))
    elif name == "full":
        base = dict(width=128, n_train=1000, n_val=500, epochs=30, batch_size=100, top_k=10,
                    patience=5)
        grids = dict(l2_grid=(0.0, 1e-4, 1e-3, 1e-2, 1e-1), l1_grid=(0.0, 1e-4, 1e-3, 1e-2, 1e-1),
                     ns=(250, 500, 1000, 2000), widths=(1, 2, 4, 8, 16, 32, 64, 128, 256))
    else:
        base = dict(width=64, n_train=400, n_val=200, epochs=15, batch_size=50, top_k=10,
                    patience=3)
        grids = dict(l2_grid=(0.0, 1e-3, 1e-2, 1e-1), l1_grid=(0.0, 1e-3, 1e-2, 1e-1),
                     ns=(100, 200, 400, 800), widths=(1, 2, 4, 8, 16, 32, 64, 128))
    cfg = validate_config({**base, **network._asdict()}, limits)
    return Protocol(name=name, base=cfg, seeds=(0, 1, 2), optimizers=(("sgd", 0.1), ("adam", 1e-3)),
                    **grids)


@dataclasses.dataclass(frozen=True)
class ClaimResult:
    """One claim (under one optimizer where the optimizer matters) and its evidence.

    Attributes:
      verdict: the rule's :class:`Verdict`.
      optimizer: "sgd", "adam", or "any" (claims not about training dynamics).
      protocol: the settings this claim was measured under (JSON types).
      evidence: named arrays behind the statistic (what the evidence chart plots).
    """

    verdict: Verdict
    optimizer: str
    protocol: dict[str, Any]
    evidence: dict[str, Any]

    @property
    def claim_id(self) -> str:
        return self.verdict.claim_id

    def to_json(self) -> dict[str, Any]:
        """The CLI's per-claim JSON object."""
        v = self.verdict.to_json()
        return {"id": v["claim_id"], "claim": CLAIMS[v["claim_id"]].quote, "verdict": v["verdict"],
                "condition": v["condition"], "statistic": v["statistic"], "criterion": v["criterion"],
                "per_seed": v["per_seed"], "protocol": self.protocol, "optimizer": self.optimizer}


@dataclasses.dataclass(frozen=True)
class FindingsResult:
    """All claims' verdicts. ``status``: "hit" (whole findings from the cache), "computed"
    or "uncached"; ``seconds``: time of this call."""

    protocol: Protocol
    claims: list[ClaimResult]
    seconds: float
    status: str

    def to_json(self) -> dict[str, Any]:
        return {"claims": [c.to_json() for c in self.claims], "config_hash": self.protocol.key,
                "protocol": self.protocol.name, "quick": self.protocol.name == "quick",
                "protocol_settings": self.protocol.to_json(), "seconds": round(self.seconds, 3),
                "status": self.status}


OnClaim = Callable[[ClaimResult], None]


# ------------------------------------------------------------------------------ plumbing


def _lists(x: Any) -> Any:
    """JSON-able copy of evidence (arrays → nested lists, NaN kept as None)."""
    if isinstance(x, dict):
        return {k: _lists(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_lists(v) for v in x]
    if isinstance(x, np.ndarray):
        return _lists(x.tolist())
    if isinstance(x, (float, np.floating)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


class _Runner:
    """Runs groups of configs through the runner in chunks the limits allow, with one
    progress bar over the whole protocol."""

    def __init__(self, limits: Limits, store: ResultStore | None, progress: ProgressFn | None,
                 total: int):
        self.limits, self.store, self.progress = limits, store, progress
        self.total, self.done = total, 0

    def runs(self, configs: Sequence[ExperimentConfig]) -> list[_run.RunResult]:
        out: list[_run.RunResult] = []
        step = max(self.limits.max_grid, 1)
        for i in range(0, len(configs), step):
            chunk = list(configs[i:i + step])
            if self.progress:
                self.progress(Progress(Stage.TRAINING, self.done, self.total))
            out += _run.run_configs(chunk, self.limits, store=self.store)
            self.done += len(chunk)
        if self.progress:
            self.progress(Progress(Stage.TRAINING, self.done, self.total))
        return out

    def spectrum(self, config: ExperimentConfig, epoch: int) -> np.ndarray:
        s = _run.spectrum_at(config, epoch, self.limits, store=self.store)
        if s.method != "dense":
            raise ValueError(f"n_train={config.n_train} is above the dense limit "
                             f"{self.limits.max_dense_n}: whole-spectrum claims need every eigenvalue")
        return np.asarray(s.eigenvalues, dtype=np.float64)


def _recorded(runs: Sequence[_run.RunResult]) -> np.ndarray:
    """(E',) int: the epochs whose λ_max every run recorded — all of 0..E with the closed
    form; with the generic NTK the runner computes the spectra at evenly spaced epochs only
    (:func:`runner._run.spectrum_epochs`), so the dynamics claims are judged on those."""
    return np.flatnonzero(np.all([np.isfinite(r.topk[:, 0]) for r in runs], axis=0))


def _grid(p: Protocol, opt: str, lr: float, reg: str, grid: Sequence[float], limits: Limits):
    """(configs, index (seed, strength) → position) of one regularization grid."""
    cfgs, where = [], {}
    for s in p.seeds:
        for g in grid:
            where[(s, g)] = len(cfgs)
            cfgs.append(validate_config(p.base, limits, optimizer=opt, lr=lr, seed=s,
                                        reg=reg if g > 0 else "none", reg_strength=g))
    return cfgs, where


def _count_runs(p: Protocol) -> int:
    per_opt = len(p.seeds) * (len(p.l2_grid) + len(p.l1_grid) + len(p.widths))
    return per_opt * len(p.optimizers) + len(p.seeds) * len(p.ns)


# ------------------------------------------------------------------------------ the claims


def _regularization_claims(p: Protocol, r: _Runner, opt: str, lr: float, limits: Limits,
                           emit: OnClaim) -> None:
    final = p.base.epochs
    for reg, grid, cid in (("l2", p.l2_grid, "l2_lowers_lambda_max"),
                           ("l1", p.l1_grid, "l1_lowers_lambda_max")):
        cfgs, where = _grid(p, opt, lr, reg, grid, limits)
        res = r.runs(cfgs)
        lam = np.array([[res[where[(s, g)]].topk[final, 0] for g in grid] for s in p.seeds])
        proto = {"optimizer": opt, "lr": lr, "reg": reg, "strengths": list(grid), "seeds": list(p.seeds),
                 "epoch": final, **_base_json(p)}
        emit(ClaimResult(RULES[cid](strengths=np.asarray(grid), lambda_max=lam, epoch=final), opt, proto,
                         _lists({"strengths": grid, "lambda_max": lam, "seeds": p.seeds, "epoch": final})))
        if reg != "l2":
            continue
        ep = _recorded(res)
        curves = np.array([[res[where[(s, g)]].topk[ep, 0] for g in grid] for s in p.seeds])  # (S,G,E')
        emit(ClaimResult(RULES["higher_l2_sharper_decline"](strengths=np.asarray(grid), lambda_max=curves,
                                                            epochs=ep),
                         opt, {**proto, "epochs": ep.tolist()},
                         _lists({"strengths": grid, "lambda_max": curves, "seeds": p.seeds})))
        # Claims about one run's dynamics: the unregularized runs of the same grid.
        base = [res[where[(s, grid[0])]] for s in p.seeds]
        lam_t = np.array([b.topk[ep, 0] for b in base])
        val = np.array([b.metrics["val_loss"][ep] for b in base])
        dyn = {**proto, "reg": "none", "strengths": [grid[0]], "epochs": ep.tolist()}
        ev = _lists({"lambda_max": lam_t, "val_loss": val, "seeds": p.seeds, "epochs": ep,
                     "best_epoch": [b.best_epoch for b in base],
                     "stop_epoch": [b.stop_epoch for b in base]})
        emit(ClaimResult(RULES["lambda_max_falls_min_rises"](lambda_max=lam_t, epochs=ep), opt, dyn, ev))
        emit(ClaimResult(RULES["min_coincides_with_overfitting"](lambda_max=lam_t, val_loss=val, epochs=ep),
                         opt, dyn, ev))
        # Whole spectra at the final epoch across the L2 grid (seed of the first run).
        specs = [r.spectrum(res[where[(p.seeds[0], g)]].config, final) for g in grid]
        labels = [f"L2 λ={g:g}" for g in grid]
        emit(ClaimResult(RULES["cdf_saturates_late"](spectra=specs, labels=labels), opt,
                         {**proto, "seed": p.seeds[0]},
                         _lists({"labels": labels, "spectra": specs})))


def _size_claims(p: Protocol, r: _Runner, limits: Limits, emit: OnClaim) -> None:
    opt, lr = p.optimizers[0]
    final = p.base.epochs
    cfgs = [validate_config(p.base, limits, optimizer=opt, lr=lr, seed=s, n_train=n,
                            top_k=min(p.base.top_k, n))
            for s in p.seeds for n in p.ns]
    res = r.runs(cfgs)
    shape = (len(p.seeds), len(p.ns))
    pick = lambda f: np.array([f(x) for x in res]).reshape(shape)  # noqa: E731
    lam = pick(lambda x: x.topk[final, 0])
    tr = pick(lambda x: x.trace[final])
    top10 = pick(lambda x: float(np.sum(x.topk[final, :10])))
    proto = {"optimizer": opt, "lr": lr, "ns": list(p.ns), "seeds": list(p.seeds), "epoch": final,
             **_base_json(p)}
    ev = _lists({"ns": p.ns, "lambda_max": lam, "trace": tr, "top10": top10, "seeds": p.seeds,
                 "lambda_max_init": pick(lambda x: x.topk[0, 0]), "trace_init": pick(lambda x: x.trace[0])})
    emit(ClaimResult(RULES["lambda_max_grows_with_n"](ns=np.asarray(p.ns), lambda_max=lam), "any", proto, ev))
    emit(ClaimResult(RULES["trace_linear_in_n"](ns=np.asarray(p.ns), trace=tr, top10=top10, lambda_max=lam),
                     "any", proto, ev))


def _width_claims(p: Protocol, r: _Runner, opt: str, lr: float, limits: Limits, emit: OnClaim,
                  rank_too: bool) -> None:
    final = p.base.epochs
    widths = [w for w in p.widths if w <= limits.max_width]
    cfgs = [validate_config(p.base, limits, optimizer=opt, lr=lr, seed=s, width=w)
            for s in p.seeds for w in widths]
    res = r.runs(cfgs)
    lam = np.array([x.topk[final, 0] for x in res]).reshape(len(p.seeds), len(widths))
    proto = {"optimizer": opt, "lr": lr, "widths": widths, "seeds": list(p.seeds), "epoch": final,
             **_base_json(p)}
    emit(ClaimResult(RULES["width_dip_rise_flatten"](widths=np.asarray(widths), lambda_max=lam), opt, proto,
                     _lists({"widths": widths, "lambda_max": lam, "seeds": p.seeds})))
    if not rank_too or 1 not in widths:
        return
    # Width 1: the whole spectrum at initialization (no optimizer involved) and after training.
    ones = [x for x in res if x.config.width == 1]
    for epoch, who in ((0, "any"), (final, opt)):
        if epoch == 0 and opt != p.optimizers[0][0]:
            continue
        eigs = [r.spectrum(x.config, epoch) for x in ones]
        emit(ClaimResult(RULES["width_1_rank_1"](eigenvalues=eigs), who,
                         {**proto, "widths": [1], "epoch": epoch},
                         _lists({"eigenvalues": eigs, "seeds": p.seeds, "epoch": epoch})))


def _base_json(p: Protocol) -> dict[str, Any]:
    b = p.base
    return {"width": b.width, "n_train": b.n_train, "n_val": b.n_val, "epochs": b.epochs,
            "batch_size": b.batch_size, "parameterization": b.parameterization, "dataset": b.dataset,
            "protocol": p.name}


# ------------------------------------------------------------------------------ entry


def _key(p: Protocol, limits: Limits) -> dict[str, Any]:
    return {"protocol": p.key, "dense_max": limits.max_dense_n, "max_width": limits.max_width,
            "result_version": _run.RESULT_VERSION, "findings_version": FINDINGS_VERSION}


def cached_findings(p: Protocol, limits: Limits, store: ResultStore | None) -> FindingsResult | None:
    """The stored findings of ``p``, or None (nothing computed)."""
    if store is None or not store.enabled:
        return None
    v = store.get("findings", _key(p, limits))
    return None if v is None else _from_value(p, v, "hit")


def findings(p: Protocol, limits: Limits, *, store: ResultStore | None = None,
             progress: ProgressFn | None = None, on_claim: OnClaim | None = None) -> FindingsResult:
    """Re-tests every claim of the study under protocol ``p``.

    Args:
      on_claim: called with each :class:`ClaimResult` as soon as its verdict is known
        (the page shows verdicts as they arrive).

    Returns:
      :class:`FindingsResult`, one entry per claim × optimizer where the optimizer matters
      (claims on training-set size use SGD and are marked "any"; width-1 rank at init is
      "any", after training per optimizer).
    """
    t0 = time.monotonic()
    hit = cached_findings(p, limits, store)
    if hit is not None:
        if on_claim:
            for c in hit.claims:
                on_claim(c)
        return dataclasses.replace(hit, seconds=time.monotonic() - t0)

    claims: list[ClaimResult] = []

    def emit(c: ClaimResult) -> None:
        claims.append(c)
        if on_claim:
            on_claim(c)

    r = _Runner(limits, store, progress, _count_runs(p))
    for i, (opt, lr) in enumerate(p.optimizers):
        _regularization_claims(p, r, opt, lr, limits, emit)
    _size_claims(p, r, limits, emit)
    for i, (opt, lr) in enumerate(p.optimizers):
        _width_claims(p, r, opt, lr, limits, emit, rank_too=True)
    claims.sort(key=lambda c: (list(CLAIMS).index(c.claim_id), c.optimizer))
    out = FindingsResult(protocol=p, claims=claims, seconds=time.monotonic() - t0, status="computed")
    if store is not None and store.enabled:
        store.put("findings", _key(p, limits), _to_value(out))
    else:
        out = dataclasses.replace(out, status="uncached")
    if progress:
        progress(Progress(Stage.DONE, r.total, r.total))
    return out


def _to_value(f: FindingsResult) -> dict[str, Any]:
    return {"json": json.dumps([{"verdict": c.verdict.to_json(), "optimizer": c.optimizer,
                                 "protocol": c.protocol, "evidence": c.evidence} for c in f.claims],
                               allow_nan=False),
            "seconds": float(f.seconds)}


def _from_value(p: Protocol, v: dict[str, Any], status: str) -> FindingsResult:
    claims = []
    for c in json.loads(str(v["json"])):
        vd = c["verdict"]
        claims.append(ClaimResult(Verdict(**vd), c["optimizer"], c["protocol"], c["evidence"]))
    return FindingsResult(protocol=p, claims=claims, seconds=float(v["seconds"]), status=status)
