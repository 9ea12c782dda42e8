"""k-means++ seeding in BADGE's gradient-embedding space: exact draws at a fraction of the cost.

BADGE (Ash et al., ICLR 2020) and ALLY's default rule pick ``b`` pool rows one after the
other, each drawn with probability proportional to ``w_i D_i^2``: its weight times its
squared distance to the nearest row picked so far, in the space of gradient embeddings
``g_i = a_i (outer) z_i`` (``a_i = p_i - onehot(argmax p_i)``, ``z_i`` the embedding). The
``N x (C d)`` gradient embeddings are never formed:
``||g_i - g_j||^2 = |a_i|^2 |z_i|^2 + |a_j|^2 |z_j|^2 - 2 (a_i . a_j)(z_i . z_j)``.

Updating every ``D_i^2`` after every pick reads the ``N x (C + d)`` factors ``b`` times,
a memory-bound pass each. Here the ``D^2`` of all rows are refreshed only from time to
time, against every row picked since the last refresh at once (blocked matrix products);
in between, the stored values are upper bounds of the true ``D^2`` (a distance to fewer
centers). Each draw is made from the stored values and accepted with probability
``true D^2 / stored D^2``, the true value computed for the drawn row alone against the
rows picked since the refresh: rejection sampling (von Neumann, 1951), so every pick is
distributed exactly as ``~ w D^2``; only the random numbers used differ from a
pick-by-pick update. Refreshing when the recent picks are half of all picks keeps the
acceptance rate high (about 75-95 % measured) and touches every row ``O(log b)`` times in
memory-bound passes; the distance computations themselves are ``N b (C + d)`` multiply-adds
in matrix products, not ``b`` matrix-vector products.
"""

from __future__ import annotations

import numpy as np
import torch

from ._torch_utils import overflow_safe, rounding_tolerance, row_sq_norms
from ._validation import uniform

__all__ = ["gradient_factors", "gradient_sq_distances", "nearest_centers",
           "gradient_seeding", "Workspace"]

#: Values per block of the distance computations (rows x centers: 1 MiB of float32, so
#: that a block stays in a core's cache).
BLOCK_VALUES = 2**18
#: Below this many values (rows x centers x width) the rows that may be rounding noise
#: are compared with every center in the difference form at once (cheaper than choosing).
SMALL_EXACT = 2**15
#: Refresh once the picks since the last refresh are this many, or half of all picks.
MIN_PENDING = 16
#: ... or after this many rejected draws in a row.
MAX_REJECTIONS = 32


def gradient_factors(probs, temperature=1.0) -> torch.Tensor:
    """``a_i = p_i - onehot(argmax p_i)``: the last layer's gradient embedding is
    ``g_i = a_i (outer) e_i`` for the hypothetical label ``argmax p_i``.

    ``temperature`` T < 1 reads the probabilities sharpened first,
    ``p_i ** (1 / T)`` renormalized (the softmax of the logits divided by T); T = 1
    reads them as they are.
    """
    if temperature != 1.0:
        log_p = torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
        probs = torch.softmax(log_p / temperature, dim=1)
    a = probs.clone()
    a[torch.arange(a.shape[0], device=a.device), a.argmax(dim=1)] -= 1.0
    return a


def _difference_form(a, z, centers_a, centers_z):
    """``||a z^T - c_a c_z^T||^2`` in the difference form, reduced over the last axis
    (the inputs broadcast against each other: row by row, or every row against every
    center)."""
    da, dz = a - centers_a, z - centers_z
    return ((da * da).sum(dim=-1) * (z * z).sum(dim=-1)
            + (centers_a * centers_a).sum(dim=-1) * (dz * dz).sum(dim=-1)
            + 2.0 * (da * centers_a).sum(dim=-1) * (dz * z).sum(dim=-1)).clamp_min_(0.0)


def gradient_sq_distances(a, z, centers_a, centers_z):
    """``||a_i z_i^T - c_a c_z^T||^2`` for every row ``i`` and center, shape (n, m).

    The difference form ``|da|^2 |z_i|^2 + |c_a|^2 |dz|^2 + 2 (da . c_a)(z_i . dz)``
    (``da = a_i - c_a``, ``dz = z_i - c_z``): no cancellation, so a copy of a center is
    at distance exactly 0. ``n x m x (C + d)`` values at once: for few rows or centers.
    """
    return _difference_form(a[:, None, :], z[:, None, :], centers_a[None], centers_z[None])


def _exact_nearest(a, z, g_sq, centers_a, centers_z, centers_g_sq, tol):
    """Nearest center of every row in the difference form (no cancellation), the
    lowest center on ties, as ``gradient_sq_distances(...).min(dim=1)``.

    Only the centers that rounding could make nearest are computed in that form: by
    the factored form, those within ``tol (|g_i|^2 + |c_j|^2)`` of the nearest (the
    tolerance every other test here uses). Rows that are copies of a center (the picks
    themselves, at every refresh) then cost one pair each instead of one per center.
    """
    n, m = a.shape[0], centers_a.shape[0]
    if n * m * (a.shape[1] + z.shape[1]) <= SMALL_EXACT:  # small: every pair, at once
        exact = gradient_sq_distances(a, z, centers_a, centers_z).min(dim=1)
        return exact.values, exact.indices
    fast = _fast_products(a, z, centers_a, centers_z, centers_g_sq).add_(g_sq[:, None])
    err = torch.add(g_sq[:, None], centers_g_sq[None, :]).mul_(tol)
    reach = torch.add(fast, err).amin(dim=1, keepdim=True)
    rows, cols = (fast.sub_(err) <= reach).nonzero(as_tuple=True)
    exact = torch.empty(rows.shape[0], dtype=a.dtype, device=a.device)
    step = max(1, BLOCK_VALUES // (a.shape[1] + z.shape[1]))
    for start in range(0, rows.shape[0], step):
        r, c = rows[start:start + step], cols[start:start + step]
        exact[start:start + step] = _difference_form(a[r], z[r], centers_a[c],
                                                     centers_z[c])
    values = torch.full((n,), float("inf"), dtype=a.dtype, device=a.device)
    values.scatter_reduce_(0, rows, exact, "amin")
    ties = exact == values[rows]
    nearest = torch.full((n,), m, dtype=torch.long, device=a.device)
    nearest.scatter_reduce_(0, rows[ties], cols[ties], "amin")
    return values, nearest


def _fast_products(a, z, centers_a, centers_z, centers_g_sq, workspace=None):
    """``|c_j|^2 - 2 (a_i . c_a_j)(z_i . c_z_j)`` for every row and center, shape (n, m):
    the squared distance less ``|g_i|^2`` (added after the minimum).

    ``workspace``: three (at least n, m) tensors the products are written into (the
    same values): a loop over blocks then allocates nothing per block. Under an
    allocator that maps every large block afresh (glibc with ``MALLOC_TRIM_THRESHOLD_``
    set, as in Dask's workers) the per-block allocations cost more page faults than
    the products cost time.
    """
    if workspace is None:
        return torch.addcmul(centers_g_sq, a @ centers_a.T, z @ centers_z.T, value=-2.0)
    n = a.shape[0]
    by_a, by_z, out = (part[:n] for part in workspace)
    torch.matmul(a, centers_a.T, out=by_a)
    torch.matmul(z, centers_z.T, out=by_z)
    return torch.addcmul(centers_g_sq, by_a, by_z, value=-2.0, out=out)


def _nearest_fast(a, z, g_sq, centers_a, centers_z, centers_g_sq, workspace=None):
    """Nearest center of every row by the factored form (two matrix products): its
    squared distance and which. Loses precision where a distance is small against the
    norms."""
    best = _fast_products(a, z, centers_a, centers_z, centers_g_sq, workspace).min(dim=1)
    return best.values + g_sq, best.indices


class Workspace:
    """Reusable buffers for :func:`nearest_centers`' blocked products: a seeding
    refreshes its distances many times, and allocating nothing per block or refresh
    keeps the allocator out of the loop (see :func:`_fast_products`)."""

    def __init__(self):
        self._buffers = {}

    def _flat(self, key, like, count, size, dtype=None):
        dtype = like.dtype if dtype is None else dtype
        flat = self._buffers.get(key)
        if flat is None or flat.shape[0] < count or flat.shape[1] < size \
                or flat.dtype != dtype or flat.device != like.device:
            flat = self._buffers[key] = torch.empty((count, size), dtype=dtype,
                                                    device=like.device)
        return flat

    def views(self, like, rows, cols):
        """Three (rows, cols) tensors of ``like``'s dtype and device."""
        flat = self._flat("products", like, 3, max(rows * cols, BLOCK_VALUES))
        return [flat[i, :rows * cols].view(rows, cols) for i in range(3)]

    def vector(self, like, rows, dtype=None):
        """A (rows,) tensor of ``like``'s device (and dtype unless given)."""
        return self._flat(("vector", dtype), like, 1, rows, dtype)[0, :rows]


def nearest_centers(a, z, centers_a, centers_z, *, g_sq=None, indices=True,
                    workspace=None):
    """Squared gradient-space distance of every row to its nearest center, and which.

    Blocks of at most :data:`BLOCK_VALUES` distances; rows whose nearest distance is
    small enough to be rounding noise are recomputed in the difference form
    (:func:`gradient_sq_distances`), so copies of a center are at 0. With
    ``indices=False`` only the distances are computed (a minimum without its position
    is about half the cost); which center is nearest is found for the rows that may be
    rounding noise only, to decide which ones are. ``workspace``: a :class:`Workspace`
    to reuse across calls (the results are the same).

    Returns
    -------
    sq_distances : tensor (n,), the dtype of ``a``
    nearest : tensor of int64 (n,), or None with ``indices=False``
    """
    g_sq = row_sq_norms(a) * row_sq_norms(z) if g_sq is None else g_sq
    centers_g_sq = (centers_a * centers_a).sum(dim=1) * (centers_z * centers_z).sum(dim=1)
    tol = rounding_tolerance(a.shape[1] + z.shape[1], a.dtype)
    largest = None if indices else float(centers_g_sq.max())
    part_rows = max(1, BLOCK_VALUES // centers_a.shape[0])
    out = torch.empty(a.shape[0], dtype=a.dtype, device=a.device)
    nearest = torch.empty(a.shape[0], dtype=torch.long, device=a.device) if indices \
        else None
    block = max(64, BLOCK_VALUES // centers_a.shape[0])
    workspace = workspace or Workspace()
    products = workspace.views(a, min(block, a.shape[0]), centers_a.shape[0])
    if not indices:
        bound_buffer = workspace.vector(a, min(block, a.shape[0]))
        flag_buffer = workspace.vector(a, min(block, a.shape[0]), torch.bool)
    for start in range(0, a.shape[0], block):
        rows = slice(start, start + block)
        if indices:
            out[rows], nearest[rows] = _nearest_fast(a[rows], z[rows], g_sq[rows],
                                                     centers_a, centers_z, centers_g_sq,
                                                     products)
            unsure = (out[rows] <= tol * (g_sq[rows] + centers_g_sq[nearest[rows]])
                      ).nonzero(as_tuple=True)[0] + start
        else:
            values, row_g_sq = out[rows], g_sq[rows]
            n_rows = values.shape[0]
            bound, flags = bound_buffer[:n_rows], flag_buffer[:n_rows]
            torch.amin(_fast_products(a[rows], z[rows], centers_a, centers_z,
                                      centers_g_sq, products), dim=1, out=values)
            values.add_(row_g_sq)
            # the nearest center's |c|^2 is at most (|g_i| + D_i)^2, D_i^2 at most the
            # computed value plus its rounding error: a bound above it (twice over)
            # flags a superset of the rows the test with indices flags (in place, in
            # the workspace: (sqrt(g) + sqrt(max(D^2, 0) + tol |c|max^2))^2 2)
            torch.clamp_min(values, 0.0, out=bound).add_(tol * largest).sqrt_()
            bound.add_(row_g_sq.sqrt()).square_().mul_(2.0)
            torch.le(values, bound.add_(row_g_sq).mul_(tol), out=flags)
            maybe = flags.nonzero(as_tuple=True)[0] + start
            unsure = maybe[:0]
            if maybe.numel():  # the same test as with indices, on these rows only
                _, near = _nearest_fast(a[maybe], z[maybe], g_sq[maybe], centers_a,
                                        centers_z, centers_g_sq)
                unsure = maybe[out[maybe] <= tol * (g_sq[maybe] + centers_g_sq[near])]
        for part in unsure.split(part_rows):
            values, which = _exact_nearest(a[part], z[part], g_sq[part], centers_a,
                                           centers_z, centers_g_sq, tol)
            out[part] = values
            if indices:
                nearest[part] = which
    return out.clamp_min_(0.0), nearest


class _Draws:
    """The state of one seeding: stored ``D^2`` (upper bounds), the picks, the picks
    since the last refresh and the cumulative draw mass."""

    def __init__(self, a, z, g_sq, weights, first, capacity):
        self.a, self.z, self.g_sq, self.weights = a, z, g_sq, weights
        self.chosen = torch.zeros(a.shape[0], dtype=torch.bool, device=a.device)
        self.picks, self.scores = [first], [float(self.g_sq[first])]
        self.chosen[first] = True
        self._workspace = Workspace()
        self.min_d2, _ = nearest_centers(a, z, a[first:first + 1], z[first:first + 1],
                                         g_sq=self.g_sq, indices=False,
                                         workspace=self._workspace)
        self.min_d2[first] = 0.0
        self.tol = rounding_tolerance(a.shape[1] + z.shape[1], a.dtype)
        # the picks since the last refresh, in buffers filled row by row
        capacity = max(1, int(capacity))
        self._recent = (a.new_empty((capacity, a.shape[1])),
                        z.new_empty((capacity, z.shape[1])), g_sq.new_empty(capacity))
        # scalar reads of one row per draw: through numpy views on the CPU (the same
        # memory), through the tensors elsewhere
        self._host = a.device.type == "cpu"
        self._min_d2_view = self.min_d2.numpy() if self._host else self.min_d2
        self._chosen_view = self.chosen.numpy() if self._host else self.chosen
        self._clear_pending()
        # the draw mass and its cumulative sum, rewritten by every refresh
        self._mass = torch.empty(a.shape[0], dtype=torch.float64, device=a.device)
        self.cumulative = torch.empty_like(self._mass)
        self._cumulative_view = self.cumulative.numpy() if self._host else None
        self._rebuild()

    @property
    def recent_a(self):
        return self._recent[0][:len(self.pending)]

    @property
    def recent_z(self):
        return self._recent[1][:len(self.pending)]

    @property
    def recent_g_sq(self):
        return self._recent[2][:len(self.pending)]

    def _clear_pending(self):
        self.pending = []

    def _rebuild(self):
        torch.mul(self.weights, self.min_d2, out=self._mass)
        torch.cumsum(self._mass, dim=0, out=self.cumulative)
        self.total = float(self.cumulative[-1])

    def refresh(self):
        """Every row's ``D^2`` against the picks since the last refresh."""
        if self.pending:
            d2, _ = nearest_centers(self.a, self.z, self.recent_a, self.recent_z,
                                    g_sq=self.g_sq, indices=False,
                                    workspace=self._workspace)
            torch.minimum(self.min_d2, d2, out=self.min_d2)
            self.min_d2[self.chosen] = 0.0
            self._clear_pending()
        self._rebuild()

    def _to_recent(self, index) -> float:
        """Squared distance of row ``index`` to its nearest pick since the refresh."""
        a_i, z_i = self.a[index:index + 1], self.z[index:index + 1]
        recent_a, recent_z, recent_g_sq = self.recent_a, self.recent_z, self.recent_g_sq
        d2, nearest = _nearest_fast(a_i, z_i, self.g_sq[index:index + 1], recent_a,
                                    recent_z, recent_g_sq)
        if float(d2) <= self.tol * float(self.g_sq[index] + recent_g_sq[nearest]):
            d2 = gradient_sq_distances(a_i, z_i, recent_a, recent_z).min()
        return max(float(d2), 0.0)

    def _index_of(self, mass: float) -> int:
        """The row whose cumulative interval holds ``mass``."""
        if self._cumulative_view is not None:
            index = int(np.searchsorted(self._cumulative_view, mass, side="right"))
        else:
            target = torch.tensor([mass], dtype=torch.float64,
                                  device=self.cumulative.device)
            index = int(torch.searchsorted(self.cumulative, target, right=True)[0])
        return min(index, self.a.shape[0] - 1)

    def draw(self, rng) -> bool:
        """One draw from the stored values, accepted with probability true/stored."""
        index = self._index_of(uniform(rng) * self.total)
        stored = float(self._min_d2_view[index])
        true = 0.0 if bool(self._chosen_view[index]) else stored
        if self.pending and true > 0:
            true = min(true, self._to_recent(index))
        if not uniform(rng) * stored < true:
            return False
        self.picks.append(index)
        self.scores.append(true)
        self.chosen[index] = True
        slot = len(self.pending)
        if slot == self._recent[0].shape[0]:  # more pending than foreseen: grow
            self._recent = tuple(torch.cat([part, part]) for part in self._recent)
        self._recent[0][slot] = self.a[index]
        self._recent[1][slot] = self.z[index]
        self._recent[2][slot] = self.g_sq[index]
        self.pending.append(index)
        return True


def gradient_seeding(a, z, n_instances, rng, *, weights=None, first_weights=None):
    """Weighted k-means++ seeding in gradient-embedding space, exact in distribution.

    The first pick maximizes ``first_weights * |g|^2`` (``first_weights`` defaults to
    ``weights``; ties by the lowest row); every next one is drawn with probability
    proportional to ``weights * D^2``. When every remaining ``weights * D^2`` is 0 (the
    rest has weight 0 or duplicates the picks), the batch is filled with the unpicked
    rows of largest ``weights * |g|^2`` (ties by the lowest row).

    Parameters
    ----------
    a : tensor (n, C)
        Output factors of the gradient embeddings (checked, finite).
    z : tensor (n, d)
        Embeddings (or their projection), same device.
    n_instances : int
        At most ``n``.
    rng : numpy.random.RandomState or torch.Generator
    weights, first_weights : tensor (n,) >= 0 or None
        None: every row weighs 1.

    Returns
    -------
    indices : numpy.ndarray of int64, in the order picked
    scores : numpy.ndarray of float64, each pick's ``D^2`` when picked (``|g|^2`` for
        the first, 0 for the fill)
    """
    dtype = torch.promote_types(a.dtype, z.dtype)
    (z,), scale = overflow_safe(z.to(dtype))  # |a_i|^2 <= 2: only z can overflow
    a = a.to(z.dtype)
    w = torch.ones(a.shape[0], dtype=torch.float64, device=a.device) if weights is None \
        else weights.to(device=a.device, dtype=torch.float64)
    first_w = w if first_weights is None else first_weights.to(a.device, torch.float64)
    g_sq = row_sq_norms(a) * row_sq_norms(z)
    state = _Draws(a, z, g_sq, w, int(torch.argmax(first_w * g_sq)),
                   capacity=max(MIN_PENDING, n_instances // 2 + 1))
    rejections = 0
    while len(state.picks) < n_instances and state.total > 0:
        rejections = 0 if state.draw(rng) else rejections + 1
        if len(state.picks) < n_instances and (
                len(state.pending) >= max(MIN_PENDING, len(state.picks) // 2)
                or rejections >= MAX_REJECTIONS):
            state.refresh()
            rejections = 0
    indices, scores = state.picks, state.scores
    if len(indices) < n_instances:  # the rest has no draw mass left
        rest = (~state.chosen).nonzero(as_tuple=True)[0]
        order = torch.sort((w * g_sq)[rest], descending=True, stable=True).indices
        fill = rest[order[:n_instances - len(indices)]].tolist()
        indices, scores = indices + fill, scores + [0.0] * len(fill)
    return (np.asarray(indices, dtype=np.int64),
            np.asarray(scores, dtype=np.float64) * scale ** 2)
