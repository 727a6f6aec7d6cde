"""numpy is optional (the ``speedups`` extra): the pure path gives the same bytes without it.

The test runs the A.1 and A.3 vectors in a fresh interpreter where ``import numpy``
raises ImportError (``sys.modules["numpy"] = None``) and the native accelerator is
switched off, as on an OmniOS install without numpy and without a C compiler. It
also checks that nothing imported numpy behind the block's back.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

from locations import ROOT
from node.test_vectors_core import (
    KNOWN_GOOD,
    KNOWN_GOOD_HASH,
    SALSA12_KS,
    SALSA20_KS,
    SALSA_KEY,
    SALSA_NONCE,
)
from ztone.crypto import mhash
from ztone.node.wire.identity import Identity

SRC = ROOT / "src"

_CHILD = textwrap.dedent(
    """
    import json, sys
    sys.modules["numpy"] = None  # any "import numpy" now raises ImportError
    from ztone.crypto import backend, mhash, salsa20
    from ztone.node.wire.identity import Identity
    pure = backend.PURE
    args = json.loads(sys.argv[1])
    key, nonce = bytes.fromhex(args["key"]), bytes.fromhex(args["nonce"])
    ident = Identity.from_string(args["identity"])
    out = {
        "s12": pure.salsa20_xor(key, nonce, bytes(64), 12).hex(),
        "s20": pure.salsa20_xor(key, nonce, bytes(64), 20).hex(),
        "hash": pure.memory_hard_hash(ident.public).hex(),
        "numpy_loaded": sys.modules.get("numpy") is not None,
    }
    try:
        salsa20.keystream_blocks_np(key, nonce, 0, 1, 20)
        out["np_blocks"] = "ran"
    except ImportError:
        out["np_blocks"] = "ImportError"
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_vectors_without_numpy() -> None:
    args = {"key": SALSA_KEY.hex(), "nonce": SALSA_NONCE.hex(), "identity": KNOWN_GOOD}
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["np_blocks"] == "ImportError"  # the block really holds
    assert out["numpy_loaded"] is False
    assert out["s12"] == SALSA12_KS.hex()
    assert out["s20"] == SALSA20_KS.hex()
    assert out["hash"] == KNOWN_GOOD_HASH.hex()


@pytest.mark.slow
def test_plain_buffers_equal_numpy_buffers() -> None:
    pytest.importorskip("numpy")
    digest = hashlib.sha512(Identity.from_string(KNOWN_GOOD).public).digest()
    assert mhash._buffers_plain(digest) == mhash._buffers_numpy(digest)
