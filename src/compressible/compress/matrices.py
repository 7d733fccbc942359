"""Weights as matrices, and the two ways this project decomposes them.

Both papers on structured compression see a conv weight (c_out, c_in, kh, kw) as the matrix
c_out x (c_in*kh*kw): compression-aware SFW's spectral LMOs (Lemma 3.1) and its low-rank
evaluation (each conv -> k x k conv to r channels + 1 x 1 conv). ``svd`` is the exact thin
SVD (low-rank surgery, the nuclear-norm proximal step); ``top_singular_triplets`` computes only
the top-k triplets (the spectral LMOs), which is why Frank-Wolfe is cheaper than a proximal step.
"""
from __future__ import annotations

import math

import torch

TINY = 1e-12  # below this a singular value counts as zero


def as_matrix(tensor: torch.Tensor) -> torch.Tensor:
    """View a weight as c_out x (c_in*kh*kw) (compression-aware SFW's convention); vectors as n x 1."""
    return tensor.reshape(tensor.shape[0], -1) if tensor.dim() >= 2 else tensor.reshape(-1, 1)


def matrix_shape(shape) -> tuple[int, int]:
    """Shape of :func:`as_matrix` of a tensor of ``shape``."""
    return (shape[0], math.prod(shape[1:])) if len(shape) >= 2 else (math.prod(shape), 1)


def top_singular_triplets(matrix: torch.Tensor, k: int, tol: float = 1e-6, max_iters: int = 500):
    """Top-k singular triplets (U_k, S_k, Vh_k) without a full SVD.

    Subspace iteration with Rayleigh-Ritz on the Gram matrix of the smaller side (which squares
    the singular-value ratios that set the convergence rate), on a block of k + max(10, k)
    vectors; the only factorizations are of that block (QR) and of a block x block matrix.
    It stops when no top-k Ritz value (sigma^2) moves by more than ``tol`` relative to the
    largest between two checks, or after ``max_iters`` products. Matrices of rank up to
    ``EIGH_MAX_RANK``, or with k over a quarter of their rank, use one eigendecomposition of the
    Gram matrix instead (exact, and faster there than iterating). The start block comes
    from a fixed-seed generator so the LMO is deterministic. Numerically null directions
    (sigma <= 1e-6 sigma_1, below the Gram matrix's float64 resolution) come back as zero
    triplets.
    """
    wide = matrix.shape[0] <= matrix.shape[1]
    side = matrix if wide else matrix.T
    # the product in the weights' own precision (float32: a quarter of the float64 cost, the
    # largest cost here), everything after it in float64
    gram = (side @ side.T).double()
    a = side.double()
    rank = gram.shape[0]
    block = min(rank, k + max(10, k))
    if rank <= EIGH_MAX_RANK or 4 * k >= rank or block == rank:
        evals, evecs = torch.linalg.eigh(gram)
    else:
        evals, evecs = _subspace_iteration(gram, block, k, tol, max_iters)
    u = evecs[:, -k:].flip(1)
    s = evals[-k:].flip(0).clamp_min(0).sqrt()
    keep = (s > 1e-6 * s[0]) & (s > TINY)
    vh = u.T @ a  # rows sigma_i v_i^T
    vh = vh / vh.norm(dim=1, keepdim=True).clamp_min(TINY) * keep[:, None]
    u, s, vh = (u * keep).to(matrix.dtype), (s * keep).to(matrix.dtype), vh.to(matrix.dtype)
    return (u, s, vh) if wide else (vh.T, s, u.T)


EIGH_MAX_RANK = 1024  # up to here one eigendecomposition of the Gram matrix beats iterating
CHECK_EVERY = 4  # products between two convergence checks (a check is one block x block eigh)


def _subspace_iteration(gram: torch.Tensor, block: int, k: int, tol: float, max_iters: int):
    generator = torch.Generator(device=gram.device).manual_seed(0)
    start = torch.randn(gram.shape[0], block, generator=generator, dtype=gram.dtype, device=gram.device)
    basis = torch.linalg.qr(gram @ start).Q
    previous = None
    for step in range(1, max_iters + 1):
        basis = torch.linalg.qr(gram @ basis).Q
        if step % CHECK_EVERY and step < max_iters:
            continue
        evals, small = torch.linalg.eigh(basis.T @ gram @ basis)  # Rayleigh-Ritz
        top = evals[-k:]
        if previous is not None and float((top - previous).abs().max()) <= tol * float(top[-1]):
            break
        previous = top
    return evals, basis @ small


def svd(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD in float64, computed on the tall orientation.

    LAPACK is several times slower on wide matrices (a conv's c_out × c_in·kh·kw is wide), so a
    wide matrix is decomposed as its transpose: Aᵀ = U S Vᵀ gives A = V S Uᵀ.
    """
    wide = matrix.shape[0] < matrix.shape[1]
    u, sigma, vh = torch.linalg.svd(matrix.double().T if wide else matrix.double(), full_matrices=False)
    return (vh.T, sigma, u.T) if wide else (u, sigma, vh)
