"""Latent Semantic Learning (LSL): one VAE per modality with entity-level masking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn


def mlp(dim: int, num_layers: int, negative_slope: float) -> nn.Sequential:
    """``num_layers`` Linear(dim, dim) layers, each followed by LeakyReLU."""
    layers: list[nn.Module] = []
    for _ in range(num_layers):
        layers += [nn.Linear(dim, dim), nn.LeakyReLU(negative_slope, inplace=True)]
    return nn.Sequential(*layers)


class ModalityVAE(nn.Module):
    r"""The VAE of one modality: an MLP encoder to :math:`(\mu, \log\sigma^2)`,
    the reparameterised latent :math:`z = \mu + \sigma \odot \epsilon`, and an MLP
    decoder back to the embedding space (Section 3.1, App. B.2).

    Args:
        dim (int): Embedding and latent size :math:`d`.
        num_layers (int): Layers of the encoder MLP (the decoder has the same
            number, its last one linear). (default: ``3``)
        negative_slope (float): LeakyReLU slope. (default: ``0.01``)
    """

    def __init__(
        self, dim: int, *, num_layers: int = 3, negative_slope: float = 0.01
    ) -> None:
        super().__init__()
        self.dim = dim
        self.encoder = mlp(dim, num_layers, negative_slope)
        self.mu = nn.Linear(dim, dim)
        self.logvar = nn.Linear(dim, dim)
        self.decoder = nn.Sequential(
            mlp(dim, num_layers - 1, negative_slope), nn.Linear(dim, dim)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()

    def moments(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)`` of the posterior of ``h``."""
        hidden = self.encoder(h)
        return self.mu(hidden), self.logvar(hidden).clamp(-10.0, 10.0)

    def sample(self, mu: Tensor, logvar: Tensor, eps: Tensor | None = None) -> Tensor:
        """``mu + sigma * eps`` when training (``eps`` drawn if not given), ``mu``
        otherwise."""
        if not self.training:
            return mu
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + eps * (0.5 * logvar).exp()

    def encode(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(z, mu, logvar)``; ``z`` is sampled when training, ``mu`` otherwise."""
        mu, logvar = self.moments(h)
        return self.sample(mu, logvar), mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)


class LSLOutput(NamedTuple):
    """Latents of the masked and unmasked passes of :class:`LatentSemanticLearning`."""

    z_masked: dict[str, Tensor]
    mu_masked: dict[str, Tensor]
    logvar_masked: dict[str, Tensor]
    z: dict[str, Tensor]
    mu: dict[str, Tensor]
    logvar: dict[str, Tensor]
    #: ``{m: (B,)}`` True where modality ``m`` was dropped by the masking.
    dropped: dict[str, Tensor]


class LSLNoise(NamedTuple):
    """The random draws of one training pass of :class:`LatentSemanticLearning`.

    Drawn for a whole batch up front so that a batch processed in chunks (or
    recomputed) sees exactly the draws it would see in one piece.
    """

    #: ``{m: (B,)}`` True where modality ``m`` is dropped by the masking.
    dropped: dict[str, Tensor]
    #: ``{m: (B, 2, d)}`` reparameterisation noise of the unmasked (``[:, 0]``)
    #: and masked (``[:, 1]``) latents.
    eps: dict[str, Tensor]


class LatentSemanticLearning(nn.Module):
    r"""Latent Semantic Learning (Section 3.1 and App. B.2 of the paper).

    For a batch of entities, each entity's whole modality vector is dropped with
    probability ``p_mask`` (Eq. 1, :math:`\tilde h^m = b^m h^m`); a per-modality VAE
    encodes both the masked input (latent :math:`\tilde z^m`) and the unmasked one
    (:math:`z^m`). Modalities an entity really lacks are zero in both passes. The
    decoders map (calibrated) latents back to the embedding space, which is how
    missing modalities are imputed.

    Args:
        modalities (Sequence[str]): Modality names.
        dim (int): Embedding and latent size :math:`d`. (default: ``300``)
        p_mask (float): Masking probability (0.45 for FB15K-DB15K, 0.50 for
            FB15K-YAGO15K, Table 9). (default: ``0.45``)
        num_layers (int): Encoder MLP depth. (default: ``3``)
        negative_slope (float): LeakyReLU slope. (default: ``0.01``)

    Shapes:
        - **input:** ``{m: (B, d)}`` embeddings, ``{m: (B,)}`` presence masks
        - **output:** :class:`LSLOutput` with ``{m: (B, d)}`` latents
    """

    def __init__(
        self,
        modalities: Sequence[str],
        dim: int = 300,
        *,
        p_mask: float = 0.45,
        num_layers: int = 3,
        negative_slope: float = 0.01,
    ) -> None:
        super().__init__()
        if not 0.0 <= p_mask < 1.0:
            raise ValueError(f"p_mask must be in [0, 1), got {p_mask}")
        self.modalities = list(modalities)
        self.dim = dim
        self.p_mask = p_mask
        self.vaes = nn.ModuleDict(
            {
                m: ModalityVAE(
                    dim, num_layers=num_layers, negative_slope=negative_slope
                )
                for m in self.modalities
            }
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for vae in self.vaes.values():
            vae.reset_parameters()

    def sample_dropped(self, present: dict[str, Tensor]) -> dict[str, Tensor]:
        """Entity-level masking: which present modality vectors to drop."""
        return {
            m: present[m]
            & (torch.rand(present[m].shape, device=present[m].device) < self.p_mask)
            for m in self.modalities
        }

    def draw(self, present: dict[str, Tensor]) -> LSLNoise:
        """The masks and reparameterisation noise of a training pass."""
        dropped = self.sample_dropped(present)
        eps = {
            m: torch.randn(present[m].size(0), 2, self.dim, device=present[m].device)
            for m in self.modalities
        }
        return LSLNoise(dropped, eps)

    def encode(self, name: str, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.vaes[name].encode(h)

    def decode(self, name: str, z: Tensor) -> Tensor:
        return self.vaes[name].decode(z)

    def forward(
        self,
        h: dict[str, Tensor],
        present: dict[str, Tensor],
        noise: LSLNoise | None = None,
    ) -> LSLOutput:
        """``noise``: the training pass's draws (default: drawn here)."""
        if not self.training:
            noise = LSLNoise(
                {m: torch.zeros_like(present[m]) for m in self.modalities}, {}
            )
        elif noise is None:
            noise = self.draw(present)
        dropped, eps = noise
        out = LSLOutput({}, {}, {}, {}, {}, {}, dropped)
        for m in self.modalities:
            vae = self.vaes[m]
            keep = present[m].unsqueeze(-1).to(h[m].dtype)
            mu, logvar = vae.moments(h[m] * keep)
            # A dropped row's masked input is the zero vector, whose moments are
            # one row: the masked pass costs no second encoder pass.
            mu_zero, logvar_zero = vae.moments(h[m].new_zeros(1, h[m].size(-1)))
            drop = dropped[m].unsqueeze(-1)
            mu_masked = torch.where(drop, mu_zero, mu)
            logvar_masked = torch.where(drop, logvar_zero, logvar)
            eps_z, eps_masked = eps[m].unbind(1) if m in eps else (None, None)
            out.z[m] = vae.sample(mu, logvar, eps_z)
            out.mu[m], out.logvar[m] = mu, logvar
            out.z_masked[m] = vae.sample(mu_masked, logvar_masked, eps_masked)
            out.mu_masked[m], out.logvar_masked[m] = mu_masked, logvar_masked
        return out

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({len(self.modalities)} modalities, "
            f"dim={self.dim}, p_mask={self.p_mask})"
        )
