"""RSA key pairs for actors, the two RSA operations HTTP signatures need, and
the Ed25519 check RFC 9421 signatures from FEP-521a Multikeys need.

The one module that touches `cryptography`, which it loads on first use: a
node that has nothing to sign or verify yet (no peers) does without its
~7 MB. PEMs and Multikeys are parsed once (cached on their text).
"""
from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

KEY_BITS = 2048
MAX_PEM_LENGTH = 16_384  # an RSA-8192 public PEM is under 1.5 KB; anything bigger is junk
MAX_MULTIBASE_LENGTH = 64  # an Ed25519 Multikey is 48 characters
_ED25519_PUB = b"\xed\x01"  # the multicodec prefix of an Ed25519 public key
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_DIGITS = {character: value for value, character in enumerate(_BASE58)}


@functools.cache
def _crypto() -> SimpleNamespace:
    """cryptography's pieces this module uses, imported the first time one is needed."""
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

    return SimpleNamespace(
        rsa=rsa, ed25519=ed25519, serialization=serialization,
        InvalidSignature=InvalidSignature, UnsupportedAlgorithm=UnsupportedAlgorithm,
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


@functools.lru_cache(maxsize=1024)
def load_multikey(multibase: str) -> ed25519.Ed25519PublicKey:
    """An Ed25519 key from a Multikey's `publicKeyMultibase` (FEP-521a), parsed once.

    That is "z" and the base58btc of the ed25519-pub multicodec (0xed 0x01)
    followed by the 32 key bytes; ValueError for anything else.
    """
    if not (multibase.startswith("z") and len(multibase) <= MAX_MULTIBASE_LENGTH):
        raise ValueError("not a base58btc multibase value")
    decoded = _base58_decode(multibase[1:])
    if len(decoded) != 34 or not decoded.startswith(_ED25519_PUB):
        raise ValueError("not an Ed25519 public key")
    return _crypto().ed25519.Ed25519PublicKey.from_public_bytes(decoded[2:])


def verify_ed25519(multibase: str, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` is the Multikey's Ed25519 signature of ``message``.

    ValueError if the Multikey is unusable.
    """
    key = load_multikey(multibase)
    try:
        key.verify(signature, message)
    except _crypto().InvalidSignature:
        return False
    return True


def _base58_decode(text: str) -> bytes:
    number = 0
    for character in text:
        digit = _BASE58_DIGITS.get(character)
        if digit is None:
            raise ValueError("not base58")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))  # each leading "1" is a zero byte
    return b"\0" * zeros + number.to_bytes((number.bit_length() + 7) // 8, "big")
