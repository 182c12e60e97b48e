"""The critic ("statistical network") shared by the mutual-dependency penalties (Colombo et al.).

A dependency penalty compares the JOINT distribution of a model's modality representations,
u = (z_t, z_a, z_v) taken from aligned rows of a batch, with the PRODUCT OF THE MARGINALS,
simulated by permuting each modality independently across the batch (`shuffle_marginals`).
A critic T_θ(u) → scalar, an MLP on the concatenation of the chosen reps (`Critic`), is trained
to tell the two apart; how well it does is the dependency estimate D (KL, Jensen–Shannon or
Wasserstein, one file each: dependency_kl.py, dependency_js.py, dependency_wasserstein.py).

`DependencyObjective` is their common base. It returns two terms:
  dependency   D, with gradients into the reps: a model step maximises it
               (model loss = task − λ·D, i.e. the term weighs −λ)
  critic_loss  −D (+ a Lipschitz penalty for Wasserstein) on DETACHED reps: trains only the
               critic, whose parameters join the optimizer "critic" (`train.optimizers.critic`)
The `penalty:` config section (objectives/penalty_config.py) attaches one to any model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mimsa.data.batch import Batch
from mimsa.errors import ConfigError
from mimsa.models.base import Count, InputSpec, ModelOutput, Width
from mimsa.objectives.base import Objective

UNIMODAL = ("t", "a", "v")
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "gelu": nn.GELU,
    "tanh": nn.Tanh, "softplus": nn.Softplus,
}


def shuffle_marginals(reps: dict[str, torch.Tensor], modalities: Sequence[str],
                      generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Return {m: reps[m] with its rows permuted} for each m in `modalities`, each modality by
    its own random permutation: samples of the product of the marginals p(z_t)·p(z_a)·p(z_v).

    The joint samples are the aligned rows of `reps` themselves. `generator` (a CPU
    torch.Generator) makes the permutations reproducible; the default uses the global RNG.
    """
    modalities = list(modalities)
    if not modalities:
        raise ValueError("shuffle_marginals: no modality to shuffle")
    n = reps[modalities[0]].shape[0]
    out = {}
    for m in modalities:
        if reps[m].shape[0] != n:
            raise ValueError(f"shuffle_marginals: rep '{m}' has {reps[m].shape[0]} rows, "
                             f"'{modalities[0]}' has {n}; reps must be aligned")
        perm = torch.randperm(n, generator=generator).to(reps[m].device)
        out[m] = reps[m][perm]
    return out


class Critic(nn.Module):
    """T_θ(u) → scalar: `depth` hidden layers of width `hidden` with `activation`, then
    Linear(hidden, 1). depth 0 is a linear critic. `spectral` wraps every Linear in spectral
    normalisation (each layer's largest singular value ≈ 1, so with a 1-Lipschitz activation
    T is ≈ 1-Lipschitz)."""

    def __init__(self, in_dim: int, hidden: int = 64, depth: int = 2,
                 activation: str = "relu", spectral: bool = False) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ConfigError(f"critic: activation '{activation}' is unknown; valid: "
                             f"{', '.join(ACTIVATIONS)}")
        if int(depth) < 0 or int(hidden) < 1:
            raise ConfigError(f"critic: depth must be >= 0 and hidden >= 1 (got depth {depth}, "
                             f"hidden {hidden})")
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(int(depth)):
            layers += [nn.Linear(width, int(hidden)), ACTIVATIONS[activation]()]
            width = int(hidden)
        layers.append(nn.Linear(width, 1))
        if spectral:
            layers = [nn.utils.parametrizations.spectral_norm(layer)
                      if isinstance(layer, nn.Linear) else layer for layer in layers]
        self.net = nn.Sequential(*layers)
        self.in_dim = in_dim

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Return T(u) [B] for u [B, in_dim]."""
        return self.net(u).squeeze(-1)


def choose_reps(name: str, reps_dims: dict[str, int], reps: Sequence[str] | str | None
                ) -> list[str]:
    """Return the reps the critic reads: `reps` (a list or a string like "tav"), or by default
    the unimodal reps t, a, v that the model declares; at least two are needed."""
    if reps is None:
        chosen = [m for m in UNIMODAL if m in reps_dims]
    else:
        chosen = [reps] if isinstance(reps, str) and reps in reps_dims else list(reps)
        named = [str(m) for m in chosen]
        twice = sorted({m for m in named if named.count(m) > 1})
        if twice:
            raise ConfigError(f"objective '{name}': reps (penalty.reps, or objectives.{name}"
                              f".reps) names {', '.join(twice)} more than once ({named}); give "
                              f"each rep once, e.g. [t, a]")
        chosen = named
        unknown = [m for m in chosen if m not in reps_dims]
        if unknown:
            raise ConfigError(f"objective '{name}': reps {', '.join(unknown)} are not reps of "
                             f"the model; it declares {', '.join(reps_dims)}")
    if len(chosen) < 2:
        raise ConfigError(f"objective '{name}': a dependency penalty measures how modalities "
                         f"depend on each other, so it needs the reps of at least two "
                         f"modalities; the model declares reps {', '.join(reps_dims)} (use a "
                         f"model and data with two or more of t, a, v)")
    return chosen


class DependencyObjective(Objective):
    """Base of the dependency penalties: a critic on the concatenated reps (see the module).

    Subclasses implement `estimate(t_joint, t_marginal) -> D` and may add a critic penalty
    in `critic_penalty(joint, marginal)`.
    """

    optimizer = "critic"
    terms = ("dependency", "critic_loss")
    kind = ""

    def __init__(self, spec: InputSpec, reps_dims: dict[str, int],
                 reps: Sequence[str] | str | None = None, hidden: Width = 64, depth: Count = 2,
                 activation: str = "relu", spectral: bool = False) -> None:
        super().__init__()
        name = f"dependency_{self.kind}"
        self.reps = choose_reps(name, reps_dims, reps)
        self.critic = Critic(sum(int(reps_dims[m]) for m in self.reps), hidden, depth,
                             activation, spectral)

    # -- pieces -------------------------------------------------------------------------------
    def joint(self, reps: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return u [B, D]: the chosen reps of aligned rows, concatenated."""
        missing = [m for m in self.reps if m not in reps]
        if missing:
            raise ConfigError(f"objective 'dependency_{self.kind}': the model output lacks reps "
                             f"{', '.join(missing)}; it has {', '.join(reps)}")
        return torch.cat([reps[m] for m in self.reps], dim=-1)

    def marginal(self, reps: dict[str, torch.Tensor],
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Return product-of-marginals samples [B, D] (each modality shuffled on its own)."""
        shuffled = shuffle_marginals(reps, self.reps, generator)
        return torch.cat([shuffled[m] for m in self.reps], dim=-1)

    def critic_values(self, joint: torch.Tensor, marginal: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (T(joint), T(marginal)), computed in one pass of the critic."""
        values = self.critic(torch.cat([joint, marginal], dim=0))
        return values[: joint.shape[0]], values[joint.shape[0]:]

    @torch.no_grad()
    def score(self, reps: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return T(u) [B] on the joint (aligned) reps: how strongly each sample's modalities
        agree, as the trained critic sees it (higher = more joint-like)."""
        return self.critic(self.joint(reps))

    def estimate(self, t_joint: torch.Tensor, t_marginal: torch.Tensor,
                 update: bool = True) -> torch.Tensor:
        """Return D from the critic's values; `update` lets an estimator with running
        statistics (the KL's moving average) update them, once per forward."""
        raise NotImplementedError

    def critic_penalty(self, joint: torch.Tensor, marginal: torch.Tensor) -> torch.Tensor:
        """Return the extra critic loss (a Lipschitz penalty); 0 by default."""
        return joint.new_zeros(())

    # -- the objective ------------------------------------------------------------------------
    def divergence(self, joint: torch.Tensor, marginal: torch.Tensor,
                   update: bool = True) -> torch.Tensor:
        """Return D on joint / product-of-marginals samples (differentiable in both)."""
        return self.estimate(*self.critic_values(joint, marginal), update=update)

    def forward(self, output: ModelOutput, batch: Batch | None) -> dict[str, torch.Tensor]:
        joint = self.joint(output.reps)
        marginal = self.marginal(output.reps)
        if joint.requires_grad or marginal.requires_grad:
            dependency = self.divergence(joint, marginal)
            joint, marginal = joint.detach(), marginal.detach()
            detached = self.divergence(joint, marginal, update=False)
        else:  # the critic step: the model ran without gradients, one critic pass suffices
            dependency = detached = self.divergence(joint, marginal)
        critic_loss = -detached + self.critic_penalty(joint, marginal)
        return {"dependency": dependency, "critic_loss": critic_loss}
