"""RSA key pairs for actors, and the two RSA operations HTTP signatures need.

The one module that touches `cryptography`, which it loads on first use: a
node that has nothing to sign or verify yet (no peers) does without its
~7 MB. PEMs are parsed once (cached on their text).
"""
from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

KEY_BITS = 2048
MAX_PEM_LENGTH = 16_384  # an RSA-8192 public PEM is under 1.5 KB; anything bigger is junk


@functools.cache
def _crypto() -> SimpleNamespace:
    """cryptography's pieces this module uses, imported the first time one is needed."""
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    return SimpleNamespace(
        rsa=rsa, serialization=serialization, InvalidSignature=InvalidSignature,
        UnsupportedAlgorithm=UnsupportedAlgorithm,
        # HTTP signatures are always RSASSA-PKCS1-v1_5 with SHA-256 (rsa-sha256, hs2019).
        pkcs1v15=padding.PKCS1v15(), sha256=hashes.SHA256(),
    )


def generate_key() -> str:
    """A new RSA-2048 private key as unencrypted PKCS#8 PEM."""
    c = _crypto()
    key = c.rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return key.private_bytes(
        c.serialization.Encoding.PEM,
        c.serialization.PrivateFormat.PKCS8,
        c.serialization.NoEncryption(),
    ).decode("ascii")


def public_pem(private_pem: str) -> str:
    """The SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY") that actors publish."""
    c = _crypto()
    return (
        load_private_key(private_pem)
        .public_key()
        .public_bytes(c.serialization.Encoding.PEM,
                      c.serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


@functools.lru_cache(maxsize=64)
def load_private_key(private_pem: str) -> rsa.RSAPrivateKey:
    """Parse a private PEM once; raises ValueError if it is not an RSA key."""
    c = _crypto()
    key = c.serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    if not isinstance(key, c.rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


@functools.lru_cache(maxsize=1024)
def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """Parse a remote public PEM once (SPKI or PKCS#1); ValueError if unusable.

    Cached on the PEM text: verifying an inbox delivery should cost one RSA
    operation, not a PEM parse as well. Failures are not cached here; the key
    fetcher keeps its own negative cache.
    """
    if len(pem) > MAX_PEM_LENGTH:
        raise ValueError("public key PEM too long")
    c = _crypto()
    try:
        key = c.serialization.load_pem_public_key(pem.strip().encode("ascii"))
    except (ValueError, TypeError, c.UnsupportedAlgorithm) as error:
        raise ValueError("not a PEM public key") from error
    if not isinstance(key, c.rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def sign(private_pem: str, message: bytes) -> bytes:
    """The RSASSA-PKCS1-v1_5 SHA-256 signature of ``message``."""
    c = _crypto()
    return load_private_key(private_pem).sign(message, c.pkcs1v15, c.sha256)


def signed_digest(public_pem: str, signature: bytes) -> bytes | None:
    """The SHA-256 digest that ``signature`` signs with this key, None if it is no such signature.

    One RSA operation however many messages the caller then compares: OpenSSL
    checks the padding, the DigestInfo and the signature's length. ValueError
    if the PEM is unusable.
    """
    key = load_public_key(public_pem)
    c = _crypto()
    try:
        return key.recover_data_from_signature(signature, c.pkcs1v15, c.sha256)
    except c.InvalidSignature:
        return None
