#!/usr/bin/python3
"""Reference Merkle tree answers for check_merkle.c, from RFC 9162 section 2.1.

An independent implementation: it follows the RFC's recursive definitions
(MTH, PATH, PROOF/SUBPROOF) literally with Python's hashlib, shares nothing
with lib/kb_merkle.c (which works on tiles with iterative algorithms), and
is slow on purpose-free simplicity.

Leaves are the ASCII bytes "leaf-<i>" for i = 0..N-1. Output, one item per
line, hashes in lowercase hex, proofs as comma-separated hashes or "-" when
empty:
    root <n> <hash>              for n = 0..N
    incl <i> <n> <proof>         for 1 <= n <= N, 0 <= i < n
    cons <m> <n> <proof>         for 1 <= m <= n <= N

Usage: merkle_ref.py [N]   (default 70)
"""
import hashlib
import sys
from functools import lru_cache


def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_data(i):
    return b"leaf-%d" % i


def largest_power_of_two_below(n):
    """k < n <= 2k, for n > 1."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


@lru_cache(maxsize=None)
def mth(lo, hi):
    """MTH(D[lo:hi]) of RFC 9162 2.1.1."""
    n = hi - lo
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + leaf_data(lo))
    k = largest_power_of_two_below(n)
    return sha256(b"\x01" + mth(lo, lo + k) + mth(lo + k, hi))


def path(m, lo, hi):
    """PATH(m, D[lo:hi]) of RFC 9162 2.1.3.1; m is relative to lo."""
    n = hi - lo
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return path(m, lo, lo + k) + [mth(lo + k, hi)]
    return path(m - k, lo + k, hi) + [mth(lo, lo + k)]


def subproof(m, lo, hi, b):
    """SUBPROOF(m, D[lo:hi], b) of RFC 9162 2.1.4.1; m is relative to lo."""
    n = hi - lo
    if m == n:
        return [] if b else [mth(lo, hi)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return subproof(m, lo, lo + k, b) + [mth(lo + k, hi)]
    return subproof(m - k, lo + k, hi, False) + [mth(lo, lo + k)]


def proof(m, n):
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1."""
    return subproof(m, 0, n, True)


def fmt(hashes):
    return ",".join(h.hex() for h in hashes) if hashes else "-"


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 70
    out = []
    for n in range(count + 1):
        out.append("root %d %s" % (n, mth(0, n).hex()))
    for n in range(1, count + 1):
        for i in range(n):
            out.append("incl %d %d %s" % (i, n, fmt(path(i, 0, n))))
    for n in range(1, count + 1):
        for m in range(1, n + 1):
            out.append("cons %d %d %s" % (m, n, fmt(proof(m, n))))
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
