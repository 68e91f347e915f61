"""SplitMix64's finaliser over numpy arrays: a bijection of uint64 that spreads structured values (segment
values, polynomial hashes) evenly over the 64-bit key space."""

from __future__ import annotations

from typing import Final

import numpy as np

_MIX_1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2: Final = np.uint64(0x94D049BB133111EB)


def splitmix64(values: np.ndarray) -> np.ndarray:
    """Each value mixed (a new array; uint64 arithmetic wraps)."""
    z = np.array(values, dtype=np.uint64)
    z ^= z >> np.uint64(30)
    z *= _MIX_1
    z ^= z >> np.uint64(27)
    z *= _MIX_2
    z ^= z >> np.uint64(31)
    return z
