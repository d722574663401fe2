"""Minimum mapping unit (``min_area_ha``): a sieve of the class raster, defined exactly.

Regions are the connected components (4 or 8) of equal class; while some region is
smaller than the MMU, take the smallest (ties: first pixel in raster order first); it
takes the class with which it shares the longest boundary, summed over its neighbours of
that class (ties: lowest class id) and so joins them; a region with no neighbour sharing
an edge (only nodata or the raster edge around it) is dropped to nodata, since nothing
below the MMU is mapped. Polygons are then exactly the polygonisation of the sieved
raster.

A first pass labels every block (worker side); a small region whose neighbours are all
certainly large is decided inside its block (that decision cannot depend on any other,
because by the class-sum rule a region's choice depends only on its neighbours' classes
and large regions never change class); the rest (small regions touching seams or other
small regions) are decided on the client, in the global order (client side). The second
pass redoes the local decisions and applies the client's before polygonising.

Memory: between the passes the client holds the small regions no block could decide on
its own and their neighbours: a fraction of the polygons, but it grows with the map."""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from geoseg.raster import PixelWindow
from geoseg.vector._blocks import _BlockTask, _read_block
from geoseg.vector._seams import _facing, _Layout, find_root


@dataclass
class _Pieces:
    """Connected pieces of one block (labels 1..n; 0 is nodata)."""

    labels: np.ndarray  # int32 (h, w)
    value: np.ndarray  # int64 (n + 1,)
    size: np.ndarray  # float64 (n + 1,): pixels, or m² where pixel areas differ
    seam: np.ndarray  # bool (n + 1,): touches an internal block edge


def _encode(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes 1..K for the classes present (0: invalid) and the K class values."""
    vals = values[valid]
    if not vals.size:
        return np.zeros(values.shape, np.int32), np.empty(0, np.int64)
    lo, hi = int(vals.min()), int(vals.max())
    if hi - lo < 1 << 16:
        present = np.flatnonzero(np.bincount(vals.astype(np.int64) - lo, minlength=hi - lo + 1))
        lut = np.zeros(hi - lo + 1, np.int32)
        lut[present] = np.arange(1, len(present) + 1, dtype=np.int32)
        codes = lut[np.where(valid, values.astype(np.int64) - lo, 0)]
        codes[~valid] = 0
        return codes, present.astype(np.int64) + lo
    classes, inverse = np.unique(vals, return_inverse=True)
    codes = np.zeros(values.shape, np.int32)
    codes[valid] = inverse.astype(np.int32) + 1
    return codes, classes.astype(np.int64)


def _label_pieces(task: _BlockTask, values: np.ndarray, valid: np.ndarray) -> _Pieces:
    """Label connected regions of equal class, per class inside its bounding box."""
    structure = ndimage.generate_binary_structure(2, 1 if task.connectivity == 4 else 2)
    codes, classes = _encode(values, valid)
    labels = np.zeros(values.shape, np.int32)
    piece_value = [np.zeros(1, np.int64)]
    n = 0
    w = task.window
    for k, box in enumerate(ndimage.find_objects(codes), start=1):
        if box is None:
            continue
        sub = codes[box] == k
        lab, m = ndimage.label(sub, structure=structure)
        view = labels[box]
        view[sub] = lab[sub] + n
        piece_value.append(np.full(m, classes[k - 1], np.int64))
        n += m
    weights = task.area.pixel_weights(w)
    flat_labels = labels.ravel()
    size: np.ndarray
    if weights is None:
        size = np.bincount(flat_labels, minlength=n + 1).astype(np.float64)
    else:
        size = np.bincount(
            flat_labels, weights=np.broadcast_to(weights, labels.shape).ravel(), minlength=n + 1
        )
    seam = np.zeros(n + 1, bool)
    for side, edge in enumerate((labels[0], labels[-1], labels[:, 0], labels[:, -1])):
        if task.internal[side]:
            seam[edge] = True
    seam[0] = False
    return _Pieces(labels, np.concatenate(piece_value), size, seam)


def _first_pixels(labels: np.ndarray, wanted: np.ndarray, window: PixelWindow, grid_width: int) -> np.ndarray:
    """Raster-order index of the first pixel of each ``wanted`` piece: the left-most pixel
    of its top row (only the few pieces the client needs, so a loop is fine)."""
    boxes = ndimage.find_objects(labels)
    keys = np.empty(len(wanted), np.int64)
    for i, j in enumerate(wanted.tolist()):
        rows, cols = boxes[j - 1]
        col = cols.start + int(np.argmax(labels[rows.start, cols] == j))
        keys[i] = (window.row_off + rows.start) * grid_width + window.col_off + col
    return keys


def _contacts(
    labels: np.ndarray, connectivity: int, wanted: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unordered pairs of touching pieces with at least one ``wanted`` end, and the length
    of boundary they share in pixel edges (0: they only touch at corners, 8-connectivity)."""
    n1 = np.int64(len(wanted))
    codes: dict[bool, list[np.ndarray]] = {True: [], False: []}
    shifts = [((slice(None), slice(None, -1)), (slice(None), slice(1, None)), True),
              ((slice(None, -1), slice(None)), (slice(1, None), slice(None)), True)]  # fmt: skip
    if connectivity == 8:
        shifts += [((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None)), False),
                   ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1)), False)]  # fmt: skip
    for sa, sb, is_edge in shifts:
        a, b = labels[sa], labels[sb]
        differ = a != b
        a, b = a[differ], b[differ]
        keep = (a > 0) & (b > 0)
        a, b = a[keep], b[keep]
        keep = wanted[a] | wanted[b]
        a, b = a[keep].astype(np.int64), b[keep].astype(np.int64)
        codes[is_edge].append(np.minimum(a, b) * n1 + np.maximum(a, b))
    edge_codes, lengths = np.unique(np.concatenate(codes[True]), return_counts=True)
    all_codes = edge_codes
    all_lengths = lengths.astype(np.float64)
    if connectivity == 8:
        corner = np.setdiff1d(np.unique(np.concatenate(codes[False])), edge_codes, assume_unique=True)
        all_codes = np.concatenate([edge_codes, corner])
        all_lengths = np.concatenate([all_lengths, np.zeros(len(corner))])
    return all_codes // n1, all_codes % n1, all_lengths


@dataclass
class _LocalSieve:
    pieces: _Pieces
    new_value: np.ndarray  # int64 (n + 1,): class after the block-local decisions
    dropped: np.ndarray  # bool (n + 1,)
    open: np.ndarray  # bool (n + 1,): small pieces only the client can decide
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray]  # contacts with an open end


def _choose_class(
    small: np.ndarray, other_value: np.ndarray, length: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each small piece: the class sharing the longest boundary (ties: lowest class)."""
    edge = length > 0
    s, v, ln = small[edge], other_value[edge], length[edge]
    if not len(s):
        return np.empty(0, np.int64), np.empty(0, np.int64)
    key = np.unique(np.stack([s, v]), axis=1, return_inverse=True)
    (us, uv), inverse = key[0], key[1].ravel()
    total = np.bincount(inverse, weights=ln)
    order = np.lexsort((uv, -total, us))
    first = order[np.r_[0, np.flatnonzero(np.diff(us[order])) + 1]]
    return us[first], uv[first]


def _local_sieve(task: _BlockTask, values: np.ndarray, valid: np.ndarray) -> _LocalSieve:
    """Label the block and decide every small piece whose neighbours are all certainly large."""
    assert task.sieve is not None
    p = _label_pieces(task, values, valid)
    threshold = task.sieve.threshold
    small = p.size < threshold
    small[0] = False
    a, b, length = _contacts(p.labels, task.connectivity, small)
    # A piece is decided here when it is small, wholly inside the block, and touches only
    # pieces that are large whatever lies across the seams (a piece's size bounds its region's).
    open_ = small & p.seam
    both_small = small[a] & small[b]
    open_[a[both_small]] = True
    open_[b[both_small]] = True
    local = small & ~open_
    new_value = p.value.copy()
    dropped = np.zeros(len(p.value), bool)
    # Contacts seen from each local piece.
    s = np.concatenate([a, b])
    o = np.concatenate([b, a])
    ln = np.concatenate([length, length])
    mine = local[s]
    chosen_piece, chosen_value = _choose_class(s[mine], p.value[o[mine]], ln[mine])
    new_value[chosen_piece] = chosen_value
    lonely = local.copy()
    lonely[chosen_piece] = False
    dropped[lonely] = True
    is_open = open_[a] | open_[b]
    return _LocalSieve(p, new_value, dropped, open_, (a[is_open], b[is_open], length[is_open]))


@dataclass
class _SieveStats:
    index: int
    valid_pixels: int
    labels: np.ndarray  # described pieces (sorted): seam pieces, open pieces and their contacts
    value: np.ndarray
    size: np.ndarray
    key: np.ndarray
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray]
    edges: tuple[np.ndarray | None, ...]  # pass-1 labels along each internal side


def _sieve_stats_block(task: _BlockTask) -> _SieveStats:
    """Dask task, first pass of the minimum mapping unit."""
    values, valid = _read_block(task.source, task.window)
    local = _local_sieve(task, values, valid)
    p = local.pieces
    a, b, _ = local.pairs
    described = p.seam | local.open
    described[a] = True
    described[b] = True
    described[0] = False
    labels = np.flatnonzero(described).astype(np.int32)
    lab = p.labels
    sides = (lab[0], lab[-1], lab[:, 0], lab[:, -1])
    edges = tuple(sides[s].copy() if task.internal[s] else None for s in range(4))
    return _SieveStats(
        task.index,
        int(valid.sum()),
        labels,
        p.value[labels],
        p.size[labels],
        _first_pixels(p.labels, labels, task.window, task.source.grid.width),
        local.pairs,
        edges,
    )


def _apply_sieve(
    task: _BlockTask, values: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Second pass: redo the (deterministic) local decisions, apply the client's, recode."""
    assert task.sieve is not None
    local = _local_sieve(task, values, valid)
    new_value, dropped = local.new_value, local.dropped
    s = task.sieve
    if len(s.labels):
        new_value[s.labels] = s.values
        dropped[s.labels] = s.dropped
    changed = (new_value != local.pieces.value) | dropped
    if not changed.any():
        return values, valid, 0
    lab = local.pieces.labels
    hit = changed[lab]
    out = values.copy()
    out[hit] = new_value[lab[hit]].astype(values.dtype)
    ok = valid & ~dropped[lab]
    return out, ok, int(hit.sum())


def _plan_sieve(
    stats: list[_SieveStats], layout: _Layout, connectivity: int, threshold: float
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Decide every small region the blocks could not: block -> (labels, new values, dropped)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    base = np.cumsum([0] + [len(s.labels) for s in stats])
    value = np.concatenate([s.value for s in stats]) if stats else np.empty(0, np.int64)
    size = np.concatenate([s.size for s in stats]) if stats else np.empty(0)
    key = np.concatenate([s.key for s in stats]) if stats else np.empty(0, np.int64)
    n_nodes = int(base[-1])

    def node(block: int, labels: np.ndarray) -> np.ndarray:
        return base[block] + np.searchsorted(stats[block].labels, labels)

    join_a: list[np.ndarray] = []
    join_b: list[np.ndarray] = []
    pair_a: list[np.ndarray] = []
    pair_b: list[np.ndarray] = []
    pair_len: list[np.ndarray] = []
    for s in stats:
        a, b, ln = s.pairs
        pair_a.append(node(s.index, a))
        pair_b.append(node(s.index, b))
        pair_len.append(ln)
        for nb, dr, dc in layout.neighbours(s.index, connectivity):
            if nb < s.index:
                continue  # each seam once
            la, lz, straight = _facing(s.edges, stats[nb].edges, dr, dc, connectivity)
            na, nz = node(s.index, la), node(nb, lz)
            same = value[na] == value[nz]
            join_a.append(na[same])
            join_b.append(nz[same])
            pair_a.append(na[~same])
            pair_b.append(nz[~same])
            pair_len.append(straight[~same].astype(np.float64))
    ja = np.concatenate(join_a) if join_a else np.empty(0, np.int64)
    jb = np.concatenate(join_b) if join_b else np.empty(0, np.int64)
    graph = coo_matrix((np.ones(len(ja), np.int8), (ja, jb)), shape=(n_nodes, n_nodes))
    n_regions, region = connected_components(graph, directed=False)
    r_size = np.bincount(region, weights=size, minlength=n_regions)
    r_key = np.full(n_regions, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(r_key, region, key)
    r_value = np.zeros(n_regions, np.int64)
    r_value[region] = value
    small = r_size < threshold

    pa = region[np.concatenate(pair_a)] if pair_a else np.empty(0, np.int64)
    pb = region[np.concatenate(pair_b)] if pair_b else np.empty(0, np.int64)
    pl = np.concatenate(pair_len) if pair_len else np.empty(0)
    keep = (pa != pb) & (small[pa] | small[pb])
    pa, pb, pl = pa[keep], pb[keep], pl[keep]
    lo, hi = np.minimum(pa, pb).astype(np.int64), np.maximum(pa, pb).astype(np.int64)
    codes, inverse = np.unique(lo * n_regions + hi, return_inverse=True)
    lengths = np.bincount(inverse.ravel(), weights=pl, minlength=len(codes))
    adj: dict[int, dict[int, float]] = defaultdict(dict)
    for c, ln in zip(codes.tolist(), lengths.tolist(), strict=True):
        x, y = divmod(c, n_regions)
        if small[x]:
            adj[x][y] = ln
        if small[y]:
            adj[y][x] = ln

    final_value, dropped = _sieve_regions(r_value, r_size, r_key, small, adj, threshold)
    node_value = final_value[region]
    node_dropped = dropped[region]
    changed = (node_value != value) | node_dropped
    plan: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for s in stats:
        sl = slice(base[s.index], base[s.index + 1])
        ch = changed[sl]
        if ch.any():
            plan[s.index] = (s.labels[ch], node_value[sl][ch], node_dropped[sl][ch])
    return plan


def _sieve_regions(
    value: np.ndarray,
    size: np.ndarray,
    key: np.ndarray,
    small: np.ndarray,
    adj: dict[int, dict[int, float]],
    threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Run the MMU rule on a region graph: smallest region first, class with the longest
    shared boundary, joining every touching region of that class."""
    n = len(value)
    parent = list(range(n))
    val = value.tolist()
    sz = size.tolist()
    ky = key.tolist()
    gone = [False] * n

    def find(x: int) -> int:
        return find_root(parent, x)

    heap = [(sz[r], ky[r], r) for r in np.flatnonzero(small).tolist()]
    heapq.heapify(heap)
    while heap:
        s, _, r = heapq.heappop(heap)
        if parent[r] != r or gone[r] or s != sz[r] or sz[r] >= threshold:
            continue
        totals: dict[int, float] = defaultdict(float)
        touching: set[int] = set()
        for nb, ln in adj.get(r, {}).items():
            q = find(nb)
            if q == r or gone[q]:
                continue
            touching.add(q)
            if ln > 0:
                totals[val[q]] += ln
        if not totals:
            gone[r] = True
            adj.pop(r, None)
            continue
        cls = min(totals, key=lambda v: (-totals[v], v))
        group = [r, *sorted(q for q in touching if val[q] == cls)]
        merged_adj: dict[int, float] = defaultdict(float)
        for m in group:
            for nb, ln in adj.pop(m, {}).items():
                merged_adj[nb] += ln
        total = sum(sz[m] for m in group)
        first = min(ky[m] for m in group)
        for m in group[1:]:
            parent[m] = r
        val[r], sz[r], ky[r] = cls, total, first
        if total < threshold:
            adj[r] = merged_adj
            heapq.heappush(heap, (total, first, r))
    roots = np.array([find(x) for x in range(n)], dtype=np.int64)
    return np.asarray(val, np.int64)[roots], np.asarray(gone, bool)[roots]
