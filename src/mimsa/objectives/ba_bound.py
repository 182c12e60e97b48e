"""`ba`: the Barber–Agakov lower bound on I(X; Y) between two unimodal representations (MMIM).

For any conditional density q,

    I(X; Y) = H(Y) − H(Y | X) ≥ H(Y) + E_p(x, y)[log q(y | x)],

with equality when q(y | x) = p(y | x). Here q is a diagonal Gaussian
N(μ(x), diag exp(logvar(x))); μ and logvar are each Linear(d_x, d_y) → ReLU → Linear(d_y, d_y).
The objective returns one term,

    lld = Σ_pairs mean_batch Σ_dims log q(y | x)      (without the constant −(d_y / 2)·log 2π),

which a stage maximises (a negative weight). H(Y) is the `entropy` objective's term "H";
`ba_lower_bound` puts the pieces (and the constant) together into a calibrated estimate.

Options:
  pairs          x→y pairs as "tv" (x = t, y = v), "t->v" or "t→v". Default: t→v, t→a. A pair
                 whose modalities the model does not produce is skipped.
  likelihood     full      log q = −(y − μ)²/(2σ²) − ½ log σ²  (the Gaussian density; default)
                 faithful  log q = −(y − μ)²/(2σ²)  (as published; without −½ log σ²,
                           maximising over logvar inflates the variance: not a bound)
  detach_target  false (default, as published): in a step that trains the model, the gradient
                 of lld reaches the encoders through x AND y. true: through x only.

logvar is clamped to ±LOGVAR_LIMIT so exp(−logvar) can neither overflow nor vanish.
Its networks join the optimizer "mi" (`train.optimizers.mi`).

Caution, measured (synthetic, 12 epochs): with the full likelihood, maximising lld through y
rewards shrinking y (log q grows by log(1/s) per dimension when y is scaled by s), and MMIM's
H(Y) on a 4-dim projection (scale 0.25) does not offset it: lld climbed from 2 to 106 and
validation MAE worsened from 0.72 (epoch 1) to 0.9. `faithful` (lld ≤ 0, its variance inflates
so its gradient fades) or `detach_target: true` avoid it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.errors import ConfigError
from mimsa.models.base import InputSpec, ModelOutput
from mimsa.objectives.base import Objective, register_objective

LIKELIHOODS = ("full", "faithful")
DEFAULT_PAIRS = ("tv", "ta")
LOGVAR_LIMIT = 10.0
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def parse_pair(text: str) -> str:
    """Return pair `text` ("tv", "t->v", "t→v") as two letters "xy"; raise on anything else."""
    letters = str(text).replace("->", "").replace("→", "").replace(" ", "")
    if len(letters) != 2 or any(m not in "tav" for m in letters) or letters[0] == letters[1]:
        raise ConfigError(f"objective 'ba': pair '{text}' is not a pair of two different "
                         f"modalities; write it as 'tv' or 't->v' (x -> y, x and y in t, a, v)")
    return letters


def gaussian_log_likelihood(y: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                            likelihood: str = "full") -> torch.Tensor:
    """Return Σ_dims log N(y; μ, exp(logvar)) per sample [B], without −(d/2)·log 2π.

    likelihood "faithful" leaves out the −½·logvar term (the published MMIM code).
    """
    if likelihood not in LIKELIHOODS:
        raise ConfigError(f"objective 'ba': likelihood '{likelihood}' is unknown; valid: "
                         f"{', '.join(LIKELIHOODS)}")
    log_q = -(y - mu).pow(2) * torch.exp(-logvar) / 2
    if likelihood == "full":
        log_q = log_q - logvar / 2
    return log_q.sum(-1)


def ba_lower_bound(entropy_y: torch.Tensor | float, lld: torch.Tensor | float,
                   dim: int) -> torch.Tensor | float:
    """Return H(Y) + E log q(y|x) in nats, adding back the constant that `lld` leaves out.

    `entropy_y` is the differential entropy of y in nats, `lld` the mean of
    `gaussian_log_likelihood(..., "full")` for one pair, `dim` the size of y.
    """
    return entropy_y + lld - dim * HALF_LOG_2PI


class GaussianQ(nn.Module):
    """q(y | x) = N(μ(x), diag exp(logvar(x))), each head Linear → ReLU → Linear."""

    def __init__(self, x_dim: int, y_dim: int) -> None:
        super().__init__()
        self.mu = nn.Sequential(nn.Linear(x_dim, y_dim), nn.ReLU(), nn.Linear(y_dim, y_dim))
        self.logvar = nn.Sequential(nn.Linear(x_dim, y_dim), nn.ReLU(),
                                    nn.Linear(y_dim, y_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(x), self.logvar(x).clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT)


@register_objective("ba")
class BABound(Objective):
    """Barber–Agakov bound: term "lld" = Σ_pairs mean_batch Σ_dims log q(y | x) (see module)."""

    optimizer = "mi"
    terms = ("lld",)

    def __init__(self, spec: InputSpec, reps_dims: dict[str, int],
                 pairs: list[str] | None = None, likelihood: str = "full",
                 detach_target: bool = False) -> None:
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ConfigError(f"objective 'ba': likelihood '{likelihood}' is unknown; valid: "
                             f"{', '.join(LIKELIHOODS)}")
        self.likelihood = likelihood
        self.detach_target = bool(detach_target)
        wanted = [parse_pair(p) for p in (DEFAULT_PAIRS if pairs is None else pairs)]
        self.pairs = [p for p in dict.fromkeys(wanted) if p[0] in reps_dims and p[1] in reps_dims]
        self.q = nn.ModuleDict({p: GaussianQ(reps_dims[p[0]], reps_dims[p[1]])
                                for p in self.pairs})

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor, pair: str,
                       likelihood: str | None = None) -> torch.Tensor:
        """Return log q(y | x) per sample [B] for `pair` ("tv", ...), without the constant."""
        mu, logvar = self.q[pair](x)
        return gaussian_log_likelihood(y, mu, logvar, likelihood or self.likelihood)

    def forward(self, output: ModelOutput, batch: Batch) -> dict[str, torch.Tensor]:
        reps = output.reps
        lld = output.prediction.new_zeros(())
        for pair in self.pairs:
            y = reps[pair[1]].detach() if self.detach_target else reps[pair[1]]
            lld = lld + self.log_likelihood(reps[pair[0]], y, pair).mean()
        return {"lld": lld}
