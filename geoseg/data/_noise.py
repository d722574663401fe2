"""Counter-based hashing and value noise: the same pixel gets the same value whatever window is drawn."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from geoseg.raster import PixelWindow

U8 = npt.NDArray[np.uint8]


U16 = npt.NDArray[np.uint16]


F32 = npt.NDArray[np.float32]


F64 = npt.NDArray[np.float64]


I64 = npt.NDArray[np.int64]


U64 = npt.NDArray[np.uint64]


Bool = npt.NDArray[np.bool_]


_MASK: Final = (1 << 64) - 1


def _mix(x: int) -> int:
    """splitmix64's finaliser: a bijection on 64-bit ints that scrambles every bit."""
    x &= _MASK
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _key(seed: int, *parts: int | str) -> int:
    """A 64-bit key for one purpose (``_key(seed, "forest", 2)``); names hash stably via crc32."""
    k = _mix(seed + 0x9E3779B97F4A7C15)
    for p in parts:
        v = zlib.crc32(p.encode()) if isinstance(p, str) else p
        k = _mix(k ^ _mix(v + 0x632BE59BD9B4E019))
    return k


class _Draws:
    """Scalar random numbers: the n-th draw of a key, independent of numpy's generators."""

    def __init__(self, key: int) -> None:
        self._key = key
        self._n = 0

    def random(self) -> float:
        self._n += 1
        return (_mix(self._key ^ _mix(self._n)) >> 11) * 2.0**-53

    def uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.random()

    def integer(self, lo: int, hi: int) -> int:
        """An int in ``[lo, hi)``."""
        return lo + min(int(self.random() * (hi - lo)), hi - lo - 1)


_C1: Final = np.uint64(0xBF58476D1CE4E5B9)


_C2: Final = np.uint64(0x94D049BB133111EB)


_KR: Final = np.uint64(0x9E3779B97F4A7C15)


_KC: Final = np.uint64(0xD6E8FEB86659FD93)


_S27: Final = np.uint64(27)


_S30: Final = np.uint64(30)


_S31: Final = np.uint64(31)


_S40: Final = np.uint64(40)


def _mix_array(x: U64) -> U64:
    """``_mix`` in place on a uint64 array (numpy wraps uint64 arithmetic silently)."""
    x ^= x >> _S30
    x *= _C1
    x ^= x >> _S27
    x *= _C2
    x ^= x >> _S31
    return x


def _hash(key: int, rows: npt.ArrayLike, cols: npt.ArrayLike) -> U64:
    """64 random bits per (row, col) pair, broadcasting ``rows`` against ``cols``.

    Rows are mixed first on their own (cheap when ``rows`` is a column vector), then each
    row hash is mixed with the column: two full rounds, so neighbours are uncorrelated.
    """
    r = np.asarray(rows, dtype=np.int64).astype(np.uint64)  # negative coordinates wrap
    c = np.asarray(cols, dtype=np.int64).astype(np.uint64)
    hr = _mix_array((r * _KR) ^ np.uint64(key))
    return _mix_array(hr ^ (c * _KC))


def _uniform(h: U64) -> F32:
    """Uniform in [-1, 1) from the top 24 bits (exact in float32)."""
    return (h >> _S40).astype(np.float32) * np.float32(2.0**-23) - np.float32(1.0)


def _gaussian(h: U64) -> F32:
    """About N(0, 1): the sum of the four 16-bit parts of the hash (Irwin-Hall, n=4)."""
    parts = h.view(np.uint16).reshape(*h.shape, 4)
    s = parts[..., 0].astype(np.float32)
    s += parts[..., 1]
    s += parts[..., 2]
    s += parts[..., 3]
    s -= np.float32(4 * 65535 / 2)
    s *= np.float32(1.0 / 37837.2)  # 65536 / sqrt(3): the std of four 16-bit uniforms
    return s


def _fade(t: F32) -> F32:
    """Smoothstep, so interpolated noise has no creases at lattice lines."""
    return t * t * (np.float32(3.0) - np.float32(2.0) * t)


def _axis(key: int, start: int, n: int, cell: int) -> tuple[I64, F32]:
    """Lattice index and fade weight of ``n`` pixels from ``start`` along one axis.

    The lattice is shifted by a per-key offset so octaves and fields do not share lines.
    """
    offset = _mix(key) % cell
    p = np.arange(start + offset, start + offset + n, dtype=np.int64)
    i = p // cell
    t = (p - i * cell).astype(np.float32) / np.float32(cell)
    return i, _fade(t)


def _noise(key: int, win: PixelWindow, cell: int) -> F32:
    """Value noise in [-1, 1] with features ``cell`` pixels apart, on a window.

    Random values on the lattice corners are interpolated first along columns, then along
    rows; each pixel's value depends only on its coordinates, never on the window.
    """
    ir, tr = _axis(key, win.row_off, win.height, cell)
    ic, tc = _axis(_mix(key), win.col_off, win.width, cell)
    lr = np.arange(ir[0], ir[-1] + 2, dtype=np.int64)
    lc = np.arange(ic[0], ic[-1] + 2, dtype=np.int64)
    lattice = _uniform(_hash(key, lr[:, None], lc[None, :]))
    jc = ic - ic[0]
    left = lattice[:, jc]
    across = left + (lattice[:, jc + 1] - left) * tc  # (lattice rows, width)
    jr = ir - ir[0]
    top = across[jr]
    out = across[jr + 1]
    out -= top
    out *= tr[:, None]
    out += top
    return out


def _fbm(key: int, win: PixelWindow, cells: Sequence[int], gain: float = 0.5) -> F32:
    """Octaves of value noise from coarse to fine, amplitudes falling by ``gain``."""
    total = np.zeros(win.shape, dtype=np.float32)
    amp, norm = 1.0, 0.0
    for octave, cell in enumerate(cells):
        n = _noise(_key(key, octave), win, cell)
        n *= np.float32(amp)
        total += n
        norm += amp
        amp *= gain
    total *= np.float32(1.0 / norm)
    return total


def _noise_at(key: int, y: F64, x: F64, cell: float) -> F64:
    """Value noise at scattered points (float pixel coordinates), for parcel centres."""
    fy, fx = y / cell, x / cell
    iy, ix = np.floor(fy), np.floor(fx)
    ty = _fade((fy - iy).astype(np.float32))
    tx = _fade((fx - ix).astype(np.float32))
    iy64, ix64 = iy.astype(np.int64), ix.astype(np.int64)
    c00 = _uniform(_hash(key, iy64, ix64))
    c01 = _uniform(_hash(key, iy64, ix64 + 1))
    c10 = _uniform(_hash(key, iy64 + 1, ix64))
    c11 = _uniform(_hash(key, iy64 + 1, ix64 + 1))
    top = c00 + (c01 - c00) * tx
    bottom = c10 + (c11 - c10) * tx
    return (top + (bottom - top) * ty).astype(np.float64)


def _noise1d(key: int, u: F64, cell: float) -> tuple[F64, F64]:
    """1-D value noise along ``u`` and its derivative (for river meanders and edges)."""
    f = u / cell
    i = np.floor(f)
    t = f - i
    i64 = i.astype(np.int64)
    a = _uniform(_hash(key, i64, 0)).astype(np.float64)
    b = _uniform(_hash(key, i64 + 1, 0)).astype(np.float64)
    value = a + (b - a) * (t * t * (3.0 - 2.0 * t))
    slope = (b - a) * (6.0 * t * (1.0 - t)) / cell
    return value, slope
