"""The demo's shared constants, below the launcher (:mod:`.launch`), the restorer (:mod:`.restorer`) and the page
(:mod:`.ui`), so that none of them imports another for a constant (no import circle inside ``osdface.app``)."""

from __future__ import annotations

from ..devices import DTYPES as DTYPE_NAMES

#: addresses that only this machine can reach (custom models are allowed there by default)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: the dtype choices of the page and of ``--dtype`` ("auto": fp16 on CUDA, else fp32)
DTYPES = ("auto", *DTYPE_NAMES)
#: uploads larger than this are refused (16.8 MP: a 4096x4096 photo passes); ``--max-pixels`` changes it
DEFAULT_MAX_PIXELS = 4096 * 4096
#: how the VAE encoder's latent is taken: its mean (deterministic) or a draw from it (the authors' code, seeded)
LATENT_MODES = ("mode", "sample")
