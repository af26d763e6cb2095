"""Content digests: the short hashes the load cache keys on.

Input: bytes (a file's content, a model's inputs, cadence.yml) or an environment variable's
value -> output: a blake2b hex digest of 12 bytes. Invariant: of an environment variable only
the digest is ever kept, never the value. Used by ``loader`` (each file read), ``projectconfig``
and ``parser`` (the env vars a render read), ``plan.manifest`` and ``build.compiler``.
"""

from __future__ import annotations

import hashlib


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def env_digest(value: str | None) -> str | None:
    """What the cache keeps of an environment variable's value: a digest, never the value."""
    return None if value is None else digest(b"env:" + value.encode("utf-8", "surrogatepass"))
