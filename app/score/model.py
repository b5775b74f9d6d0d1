"""An online logistic regression: standardised inputs, AdaGrad steps, prior-corrected output.

Own code rather than River's `StandardScaler | LogisticRegression`: the same arithmetic in the
same order on every worker and in replay (floats, no hash-ordered dicts), a snapshot that is a
plain list of numbers, and about a tenth of River's per-example cost (see bench/README.md).

- Standardisation: per feature, Welford's running mean and variance over the examples learned
  so far; an input is `(x - mean) / std`, clipped to +-8 so that one rare value cannot swing
  the weights; a feature with no variance yet passes through centred.
- Learning: one AdaGrad step on the log loss per example (per-feature step sizes shrink with
  the gradients seen, so rare binary features such as a rule firing still learn quickly),
  with a small L2 decay. Examples carry a weight (1 here; kept for callers that weight).
- A learned curve over one feature (`band_feature`, the log amount): its value is cut into
  bands `band_width` wide (5 % of the amount) and each band has its own weight, learned with
  the same AdaGrad step. A linear weight can only say "more is riskier"; the bands learn
  where risk jumps (a fraud ring's favourite amounts, a bar above which everything is fraud)
  without a threshold written down anywhere. There are `TILINGS` such grids, each shifted by
  a `1 / TILINGS` of a band (tile coding): an amount's curve value is the sum of its band's
  weight in each, so the curve generalises over 5 % but places a jump to 5 % / TILINGS (one
  grid alone leaves the band that straddles the bar half legit, half fraud).
- Imbalance: the learner keeps only a sample of negatives (rate `r`); the raw logit then
  overstates the odds by 1/r, and `predict` subtracts log(1/r) (King & Zeng's prior
  correction) so the score stays an estimate of the probability of fraud.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

_CLIP = 8.0
BANDS = 512
TILINGS = 4
BAND_LR_FACTOR = 10.0


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class OnlineLogistic:
    """Logistic regression over `n` features, learned one example at a time."""

    __slots__ = (
        "_band_g2",
        "_g2",
        "_inv_std",
        "_m2",
        "_mean",
        "band_feature",
        "band_width",
        "bands",
        "bias",
        "l2",
        "lr",
        "n",
        "offset",
        "seen",
        "weights",
    )

    def __init__(
        self,
        n: int,
        lr: float = 0.05,
        l2: float = 1e-5,
        offset: float = 0.0,
        band_feature: int | None = None,
        band_width: float = math.log(1.05),
    ) -> None:
        """`offset` is added to every logit at prediction (the prior correction, <= 0)."""
        self.band_feature = band_feature
        self.band_width = band_width
        self.bands = [0.0] * (BANDS * TILINGS)  # weight per band of `band_feature`, per grid
        self._band_g2 = [0.0] * (BANDS * TILINGS)
        self.n = n
        self.lr = lr
        self.l2 = l2
        self.offset = offset
        self.seen = 0  # examples learned (the scaler's count)
        self.weights = [0.0] * n
        self.bias = 0.0
        self._mean = [0.0] * n
        self._m2 = [0.0] * n
        self._inv_std = [0.0] * n  # 1 / std per feature (0: no variance yet), kept by learn
        self._g2 = [0.0] * (n + 1)  # AdaGrad accumulators, bias last

    def _standardise(self, x: Sequence[float]) -> list[float]:
        if self.seen < 2:
            return [0.0] * self.n
        out = []
        for xi, mean, inv in zip(x, self._mean, self._inv_std, strict=True):
            v = (xi - mean) * inv
            out.append(_CLIP if v > _CLIP else -_CLIP if v < -_CLIP else v)
        return out

    def band(self, x: Sequence[float]) -> list[int]:
        """The index in `bands` of `x[band_feature]`'s band in each grid (none without bands)."""
        if self.band_feature is None:
            return []
        v = x[self.band_feature] / self.band_width
        out = []
        for k in range(TILINGS):
            b = int(v + k / TILINGS)
            out.append(k * BANDS + (0 if b < 0 else BANDS - 1 if b >= BANDS else b))
        return out

    def band_weight(self, x: Sequence[float]) -> float:
        """The learned curve's value at `x` (0 without bands)."""
        bands = self.bands
        return sum(bands[b] for b in self.band(x))

    def logit(self, x: Sequence[float]) -> tuple[float, list[float]]:
        """The raw logit (without `offset`) and the standardised inputs it came from."""
        z = self._standardise(x)
        total = self.bias + self.band_weight(x)
        for w, v in zip(self.weights, z, strict=True):
            total += w * v
        return total, z

    def predict(self, x: Sequence[float]) -> float:
        """The estimated probability that `x` is fraud (prior-corrected): `explain`'s, to the
        last bit (the same additions in the same order)."""
        return self.explain(x)[0]

    def explain(self, x: Sequence[float]) -> tuple[float, list[float]]:
        """The probability and each feature's contribution to the logit (weight x input); the
        band's weight comes last. (Comprehensions, not a loop with appends: this runs for
        every transaction scored.)"""
        band = self.band_weight(x)
        if self.seen < 2:
            return _sigmoid(self.bias + band + self.offset), [0.0] * self.n + [band]
        z = [(xi - m) * inv for xi, m, inv in zip(x, self._mean, self._inv_std, strict=True)]
        contributions = [
            w * (_CLIP if v > _CLIP else -_CLIP if v < -_CLIP else v)
            for w, v in zip(self.weights, z, strict=True)
        ]
        contributions.append(band)
        return _sigmoid(self.bias + sum(contributions) + self.offset), contributions

    def learn(self, x: Sequence[float], y: int, weight: float = 1.0) -> None:
        """One step on (x, y), y in {0, 1}; the scaler first takes x into its statistics."""
        n1 = self.seen + 1
        mean, m2, inv = self._mean, self._m2, self._inv_std
        for i, xi in enumerate(x):
            delta = xi - mean[i]
            mean[i] += delta / n1
            m2[i] += delta * (xi - mean[i])
            var = m2[i] / n1
            inv[i] = 1.0 / math.sqrt(var) if var > 1e-12 else 0.0
        self.seen = n1
        total, z = self.logit(x)
        g = (_sigmoid(total) - y) * weight  # d(log loss)/d(logit), without the prior offset
        lr, l2 = self.lr, self.l2
        g2, w = self._g2, self.weights
        for i, v in enumerate(z):
            gi = g * v + l2 * w[i]
            if gi:
                g2[i] += gi * gi
                w[i] -= lr * gi / (math.sqrt(g2[i]) + 1e-9)
        g2[-1] += g * g
        if g:
            self.bias -= lr * g / (math.sqrt(g2[-1]) + 1e-9)
        if g:
            bands, band_g2 = self.bands, self._band_g2
            # Each band learns from few examples: ten times the step of a dense weight, shared
            # by the grids.
            step = BAND_LR_FACTOR / TILINGS * lr
            for b in self.band(x):
                gb = g + l2 * bands[b]
                band_g2[b] += gb * gb
                bands[b] -= step * gb / (math.sqrt(band_g2[b]) + 1e-9)

    def to_dict(self) -> dict[str, Any]:
        """Every learned number, for a snapshot."""
        return {
            "n": self.n,
            "seen": self.seen,
            "weights": self.weights,
            "bias": self.bias,
            "mean": self._mean,
            "m2": self._m2,
            "g2": self._g2,
            "bands": self.bands,
            "band_g2": self._band_g2,
        }

    def load(self, data: dict[str, Any]) -> None:
        """Take the learned numbers of `to_dict` (same feature count) back."""
        if data["n"] != self.n:
            raise ValueError(f"snapshot has {data['n']} features, this model {self.n}")
        if len(data["bands"]) != len(self.bands):
            raise ValueError(
                f"snapshot has {len(data['bands'])} bands, this model {len(self.bands)}"
            )
        self.seen = int(data["seen"])
        self.weights = [float(v) for v in data["weights"]]
        self.bias = float(data["bias"])
        self._mean = [float(v) for v in data["mean"]]
        self._m2 = [float(v) for v in data["m2"]]
        seen = max(self.seen, 1)
        self._inv_std = [1.0 / math.sqrt(m / seen) if m / seen > 1e-12 else 0.0 for m in self._m2]
        self._g2 = [float(v) for v in data["g2"]]
        self.bands = [float(v) for v in data["bands"]]
        self._band_g2 = [float(v) for v in data["band_g2"]]
