"""The heap trim (service/heap.py): glibc's malloc_trim through the accelerator or,
without it, through ctypes; what it gives back is measured by bench/memory.py, not
here."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from ztone.crypto.backend import NATIVE
from ztone.service.heap import ctypes_trimmer, heap_trimmer

GLIBC = sys.platform.startswith("linux") and (ctypes.util.find_library("c") or "").startswith(
    "libc.so"
)
"""glibc (not musl, whose C library file is named otherwise)."""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_glibc_has_a_trimmer_and_it_runs() -> None:
    trim = heap_trimmer()
    assert trim is not None
    assert trim() in (True, False, 0, 1)
    if NATIVE is not None and NATIVE.native is not None:
        assert trim is NATIVE.native.trim_heap  # the accelerator's, not ctypes'


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_without_the_accelerator_ctypes_trims() -> None:
    trim = ctypes_trimmer()
    assert trim is not None
    assert trim() in (0, 1)


@pytest.mark.skipif(GLIBC, reason="a C library without malloc_trim")
def test_other_c_libraries_have_no_trimmer() -> None:
    assert heap_trimmer() is None
