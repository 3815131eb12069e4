"""RSA key pairs for actors: make them, publish the public half, parse PEMs once."""
from __future__ import annotations

from functools import lru_cache

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_BITS = 2048
MAX_PEM_LENGTH = 16_384  # an RSA-8192 public PEM is under 1.5 KB; anything bigger is junk


def generate_key() -> str:
    """A new RSA-2048 private key as unencrypted PKCS#8 PEM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def public_pem(private_pem: str) -> str:
    """The SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY") that actors publish."""
    return (
        load_private_key(private_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


@lru_cache(maxsize=64)
def load_private_key(private_pem: str) -> rsa.RSAPrivateKey:
    """Parse a private PEM once; raises ValueError if it is not an RSA key."""
    key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


@lru_cache(maxsize=1024)
def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """Parse a remote public PEM once (SPKI or PKCS#1); ValueError if unusable.

    Cached on the PEM text: verifying an inbox delivery should cost one RSA
    operation, not a PEM parse as well. Failures are not cached here; the key
    fetcher keeps its own negative cache.
    """
    if len(pem) > MAX_PEM_LENGTH:
        raise ValueError("public key PEM too long")
    try:
        key = serialization.load_pem_public_key(pem.strip().encode("ascii"))
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise ValueError("not a PEM public key") from error
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key
