"""The River models behind the online ranker, their explicit codecs and the prequential metrics.

Two models, one interface (``logit``, ``learn``, ``encode``, ``decode``):

- :class:`LinearModel`: River's ``linear_model.LogisticRegression`` (log loss, L2, optimizer
  ``sgd``, ``adagrad`` or ``ftrl``; the intercept learns at its own constant rate). The default
  is plain SGD at a constant rate: on the planted data it is within 0.002 AUC of the best
  (FTRL-Proximal) and the fastest (≈ 34k examples/s against FTRL's 19k, join and features
  included), and a constant rate keeps tracking drift in a stream that never ends, where
  AdaGrad's and FTRL's per-coordinate rates shrink for ever.
- :class:`FactorizationModel`: River's ``facto.FMClassifier`` (pairwise interactions through
  ``fm_factors`` latent factors per feature; the weights use the configured optimizer, the
  latents plain SGD: River's AdaGrad keys its state by factor index on a latent vector, so it
  would share one accumulator across all features).

**Sparse learning.** In River 0.23 ``LogisticRegression.learn_one`` costs O(every feature ever
seen): its masked weight ``VectorDict`` scans the whole weight dict in the dot product and the
update (fixed upstream in online-ml/river#1913, after the River 0.23 pinned here beside
PyFlink's numpy < 2.2). With hashed user and item ids that is the number of users plus items:
measured here, 1.5k (with L2) to 3.2k (without) examples/s after 30k examples, and falling. So both
adapters hand River a *local* weight dict holding only the example's features for the duration
of ``learn_one`` and copy the result back: River's own update, on O(active features). A test
pins that the result equals stock River's (to float rounding).

**Predictions never mutate the model.** ``logit`` reads the weights with ``get`` (River's FM
``predict_proba_one`` inserts a random latent vector for every unseen feature). An unseen feature
contributes nothing to a prediction.

**No RNG state.** The FM's latent vector of a new feature is drawn from a generator seeded by
``(seed, BLAKE2b(feature))``: it depends on the feature alone, not on the order features arrive
in, so a restored model continues exactly as the uninterrupted one without saving an RNG.

**Codecs.** Weights, latents and optimizer state are plain JSON objects in insertion order (which
a restore reproduces, so iteration order, and with it float rounding, is the same after a
restore). No pickle.

**AUC.** River's ``metrics.ROCAUC`` places ``n_thresholds`` (10) thresholds evenly in [0, 1];
with click-through rates of a few percent nearly every prediction falls below the second
threshold and the estimate collapses towards 0.5: on 50k scores of exact AUC 0.756 at a
click-through rate of about 1 % it read 0.526 (0.612 at 3 %; ``python -m operators.ranker bench``
prints it beside ours). :class:`BinnedAUC` counts predictions in :data:`AUC_BINS` bins evenly
spaced on the *logit* scale instead: O(1) per update, ties within a bin count half, within 0.002
of the exact AUC on the planted data (``tests/test_ranker.py``).

>>> auc = BinnedAUC()
>>> for y, p in [(True, 0.9), (False, 0.1), (True, 0.4), (False, 0.6)]:
...     auc.update(y, p)
>>> auc.get()
0.75
"""

from __future__ import annotations

import collections
import hashlib
import math
from collections.abc import Mapping
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt
from river import facto, linear_model, metrics, optim, utils

# River 0.23 ships partial annotations (some constructors typed, most not): reach it through
# ``Any`` here rather than silencing each call.
_optim: Any = optim
_metrics: Any = metrics
_facto: Any = facto
_linear_model: Any = linear_model

Vector = npt.NDArray[np.float64]

LOGISTIC_REGRESSION: Final = "logistic_regression"
FACTORIZATION_MACHINE: Final = "factorization_machine"
MODELS: Final = (LOGISTIC_REGRESSION, FACTORIZATION_MACHINE)
ADAGRAD: Final = "adagrad"
SGD: Final = "sgd"
FTRL: Final = "ftrl"
OPTIMIZERS: Final = (ADAGRAD, SGD, FTRL)

LOGIT_CLAMP: Final = 30.0   # as River's sigmoid: beyond it a probability is 0 or 1
AUC_BINS: Final = 800       # bins of BinnedAUC over [-AUC_LOGIT_RANGE, AUC_LOGIT_RANGE]
AUC_LOGIT_RANGE: Final = 10.0


class ModelParams(Protocol):
    """What the adapters read from :class:`operators.ranker.RankerConfig`."""

    @property
    def model(self) -> str: ...
    @property
    def optimizer(self) -> str: ...
    @property
    def lr(self) -> float: ...
    @property
    def intercept_lr(self) -> float: ...
    @property
    def l2(self) -> float: ...
    @property
    def fm_factors(self) -> int: ...
    @property
    def fm_latent_lr(self) -> float: ...
    @property
    def fm_init_sigma(self) -> float: ...
    @property
    def seed(self) -> int: ...


def sigmoid(z: float) -> float:
    z = min(max(z, -LOGIT_CLAMP), LOGIT_CLAMP)
    return 1.0 / (1.0 + math.exp(-z))


# ---- optimizers ---------------------------------------------------------------------------------

def _optimizer(name: str, lr: float, l2: float) -> Any:
    if name == ADAGRAD:
        return _optim.AdaGrad(lr)
    if name == SGD:
        return _optim.SGD(lr)
    if name == FTRL:  # McMahan et al. 2013; its own L2 (the model's l2 is then not added)
        return _optim.FTRLProximal(alpha=lr, beta=1.0, l1=0.0, l2=l2)
    raise ValueError(f"operators.ranker_models: optimizer must be one of {OPTIMIZERS}, "
                     f"got {name!r}")


def _encode_optimizer(name: str, opt: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"name": name, "n_iterations": int(opt.n_iterations)}
    if name == ADAGRAD:
        doc["g2"] = _floats(opt.g2)
    elif name == FTRL:
        doc["z"] = _floats(opt.z)
        doc["n"] = _floats(opt.n)
    return doc


def _decode_optimizer(name: str, opt: Any, doc: Mapping[str, Any]) -> None:
    if doc.get("name") != name:
        raise ValueError(f"operators.ranker_models.decode: optimizer.name {doc.get('name')!r} "
                         f"does not match the config's {name!r}")
    opt.n_iterations = int(doc["n_iterations"])
    if name == ADAGRAD:
        opt.g2 = collections.defaultdict(float, _floats(doc["g2"]))
    elif name == FTRL:
        opt.z = collections.defaultdict(float, _floats(doc["z"]))
        opt.n = collections.defaultdict(float, _floats(doc["n"]))


def _floats(d: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in d.items()}


# ---- logistic regression ------------------------------------------------------------------------

class LinearModel:
    """River's LogisticRegression, learning on the active features only (module docstring)."""

    kind: Final = LOGISTIC_REGRESSION

    def __init__(self, p: ModelParams) -> None:
        self.optimizer_name = p.optimizer
        self.weights: dict[str, float] = {}  # the source of truth, shared with River's VectorDict
        self.river: Any = _linear_model.LogisticRegression(
            optimizer=_optimizer(p.optimizer, p.lr, p.l2),
            l2=0.0 if p.optimizer == FTRL else p.l2, intercept_lr=p.intercept_lr)
        self.river._weights = utils.VectorDict(self.weights)  # by reference, no copy

    def logit(self, x: Mapping[str, float]) -> float:
        w = self.weights
        return float(self.river.intercept) + math.fsum(w.get(k, 0.0) * v for k, v in x.items())

    def learn(self, x: dict[str, float], y: bool, weight: float) -> None:
        full = self.weights
        local = {k: full[k] for k in x if k in full}
        self.river._weights = utils.VectorDict(local)
        try:
            self.river.learn_one(x, y, w=weight)
        finally:
            self.river._weights = utils.VectorDict(full)
        for k, v in local.items():
            full[k] = float(v)

    def encode(self) -> dict[str, Any]:
        return {"kind": self.kind, "intercept": float(self.river.intercept),
                "weights": dict(self.weights),
                "optimizer": _encode_optimizer(self.optimizer_name, self.river.optimizer)}

    def decode(self, doc: Mapping[str, Any]) -> None:
        self.river.intercept = float(doc["intercept"])
        self.weights.clear()
        self.weights.update(_floats(doc["weights"]))
        _decode_optimizer(self.optimizer_name, self.river.optimizer, doc["optimizer"])

    def size(self) -> int:
        return len(self.weights)


# ---- factorization machine ----------------------------------------------------------------------

class FactorizationModel:
    """River's FMClassifier with order-free latent initialisation (module docstring)."""

    kind: Final = FACTORIZATION_MACHINE

    def __init__(self, p: ModelParams) -> None:
        if p.optimizer == FTRL:
            raise ValueError("operators.ranker_models: optimizer 'ftrl' is for the logistic "
                             "regression; the factorization machine takes 'adagrad' or 'sgd'")
        self.optimizer_name = p.optimizer
        self.factors = p.fm_factors
        self.sigma = p.fm_init_sigma
        self.seed = p.seed
        self.river: Any = _facto.FMClassifier(
            n_factors=p.fm_factors, weight_optimizer=_optimizer(p.optimizer, p.lr, p.l2),
            latent_optimizer=_optim.SGD(p.fm_latent_lr), l2_weight=p.l2, l2_latent=p.l2,
            intercept_lr=p.intercept_lr, seed=p.seed)
        self.weights: dict[str, float] = {}
        self.latents: dict[str, Vector] = {}

    def init_latent(self, feature: str) -> Vector:
        """The initial latent vector of ``feature``: a function of (seed, feature) only."""
        h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
        return np.random.default_rng((self.seed, h)).normal(0.0, self.sigma, self.factors)

    def logit(self, x: Mapping[str, float]) -> float:
        w = self.weights
        z = float(self.river.intercept) + math.fsum(w.get(k, 0.0) * v for k, v in x.items())
        known = [(v, self.latents[k]) for k, v in x.items() if k in self.latents]
        if len(known) > 1:
            xs = np.array([v for v, _ in known])
            vs = np.array([lat for _, lat in known])
            s = xs @ vs
            z += 0.5 * float(s @ s - (xs * xs) @ (vs * vs).sum(axis=1))
        return z

    def learn(self, x: dict[str, float], y: bool, weight: float) -> None:
        full_w, full_v = self.weights, self.latents
        for k in x:
            if k not in full_v:
                full_v[k] = self.init_latent(k)
        local_w = collections.defaultdict(float, {k: full_w[k] for k in x if k in full_w})
        local_v = {k: full_v[k] for k in x}  # the same arrays: River updates them in place
        self.river.weights, self.river.latents = local_w, local_v
        try:
            self.river.learn_one(x, y, w=weight)
        finally:
            self.river.weights = collections.defaultdict(float)
            self.river.latents = {}
        for k, v in local_w.items():
            full_w[k] = float(v)
        for k, lat in local_v.items():
            full_v[k] = lat

    def encode(self) -> dict[str, Any]:
        return {"kind": self.kind, "intercept": float(self.river.intercept),
                "weights": dict(self.weights),
                "latents": {k: [float(f) for f in v] for k, v in self.latents.items()},
                "optimizer": _encode_optimizer(self.optimizer_name, self.river.weight_optimizer),
                "latent_optimizer": _encode_optimizer(SGD, self.river.latent_optimizer)}

    def decode(self, doc: Mapping[str, Any]) -> None:
        self.river.intercept = float(doc["intercept"])
        self.weights.clear()
        self.weights.update(_floats(doc["weights"]))
        self.latents.clear()
        for k, v in doc["latents"].items():
            if len(v) != self.factors:
                raise ValueError(f"operators.ranker_models.decode: latents[{k!r}] has "
                                 f"{len(v)} factors, the config says {self.factors}")
            self.latents[str(k)] = np.array(v, dtype=np.float64)
        _decode_optimizer(self.optimizer_name, self.river.weight_optimizer, doc["optimizer"])
        _decode_optimizer(SGD, self.river.latent_optimizer, doc["latent_optimizer"])

    def size(self) -> int:
        return len(self.weights) + len(self.latents) * self.factors


Model = LinearModel | FactorizationModel


def make_model(p: ModelParams) -> Model:
    if p.model == LOGISTIC_REGRESSION:
        return LinearModel(p)
    if p.model == FACTORIZATION_MACHINE:
        return FactorizationModel(p)
    raise ValueError(f"operators.ranker_models: model must be one of {MODELS}, got {p.model!r}")


# ---- prequential metrics ------------------------------------------------------------------------

class BinnedAUC:
    """ROC AUC from positive and negative counts in :data:`AUC_BINS` logit bins; ties (same bin)
    count half. Unweighted: every shown item counts once."""

    def __init__(self) -> None:
        self.pos = [0] * AUC_BINS
        self.neg = [0] * AUC_BINS

    @staticmethod
    def bin(p: float) -> int:
        p = min(max(p, 1e-300), 1.0 - 1e-16)
        z = math.log(p) - math.log1p(-p)
        i = int((z + AUC_LOGIT_RANGE) * AUC_BINS / (2 * AUC_LOGIT_RANGE))
        return min(max(i, 0), AUC_BINS - 1)

    def update(self, y: bool, p: float) -> None:
        (self.pos if y else self.neg)[self.bin(p)] += 1

    def get(self) -> float:
        """The AUC so far; 0.5 until both classes were seen."""
        n_pos, n_neg = sum(self.pos), sum(self.neg)
        if not n_pos or not n_neg:
            return 0.5
        below = 0
        wins = 0.0
        for pos, neg in zip(self.pos, self.neg, strict=True):
            wins += pos * (below + 0.5 * neg)
            below += neg
        return wins / (n_pos * n_neg)

    def encode(self) -> dict[str, Any]:
        """Sparse: ``{bin: count}`` for the bins that hold something."""
        return {"bins": AUC_BINS, "logit_range": AUC_LOGIT_RANGE,
                "pos": {str(i): c for i, c in enumerate(self.pos) if c},
                "neg": {str(i): c for i, c in enumerate(self.neg) if c}}

    @classmethod
    def decode(cls, doc: Mapping[str, Any]) -> BinnedAUC:
        if doc.get("bins") != AUC_BINS or doc.get("logit_range") != AUC_LOGIT_RANGE:
            raise ValueError(f"operators.ranker_models.BinnedAUC.decode: bins/logit_range "
                             f"{doc.get('bins')!r}/{doc.get('logit_range')!r}, expected "
                             f"{AUC_BINS}/{AUC_LOGIT_RANGE}")
        auc = cls()
        for name in ("pos", "neg"):
            counts = getattr(auc, name)
            for i, c in doc[name].items():
                counts[int(i)] = int(c)
        return auc


def new_log_loss() -> Any:
    return _metrics.LogLoss()


def encode_log_loss(m: Any) -> dict[str, Any]:
    return {"n": float(m._mean.n), "mean": float(m._mean._mean)}


def decode_log_loss(doc: Mapping[str, Any]) -> Any:
    m = _metrics.LogLoss()
    m._mean.n = float(doc["n"])
    m._mean._mean = float(doc["mean"])
    return m
