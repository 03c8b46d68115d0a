"""UrlSigner: a signature is bound to its key, its expiry and the server secret."""

from __future__ import annotations

import pytest

from labcore.adapters.media.signing import UrlSigner
from labcore.errors import Forbidden

KEY = "posts/abc.png"
EXPIRES = 2_000_000_000
NOW = EXPIRES - 60


@pytest.fixture
def signer() -> UrlSigner:
    return UrlSigner("test-secret")


def test_valid_signature_verifies(signer: UrlSigner) -> None:
    signature = signer.sign(KEY, EXPIRES)
    assert len(signature) == 64  # SHA-256 hex
    signer.verify(KEY, EXPIRES, signature, now=NOW)
    signer.verify(KEY, EXPIRES, signature, now=EXPIRES)  # valid through its last second


@pytest.mark.parametrize(
    "key, expires, tamper",
    [
        pytest.param(KEY, EXPIRES, lambda s: s[:-1] + "01"[s[-1] == "0"], id="flipped-char"),
        pytest.param(KEY, EXPIRES, lambda s: s.upper(), id="uppercased"),
        pytest.param(KEY, EXPIRES, lambda s: "", id="empty"),
        pytest.param(KEY, EXPIRES, lambda s: "é" * 64, id="non-ascii"),
        pytest.param("posts/other.png", EXPIRES, lambda s: s, id="other-key"),
        pytest.param(KEY, EXPIRES + 3600, lambda s: s, id="extended-expiry"),
    ],
)
def test_tampered_url_is_forbidden(signer: UrlSigner, key: str, expires: int, tamper) -> None:
    signature = tamper(signer.sign(KEY, EXPIRES))
    with pytest.raises(Forbidden, match="bad signature"):
        signer.verify(key, expires, signature, now=NOW)


def test_signature_from_another_secret_is_forbidden(signer: UrlSigner) -> None:
    signature = UrlSigner("other-secret").sign(KEY, EXPIRES)
    with pytest.raises(Forbidden, match="bad signature"):
        signer.verify(KEY, EXPIRES, signature, now=NOW)


def test_expired_signature_is_forbidden(signer: UrlSigner) -> None:
    signature = signer.sign(KEY, EXPIRES)
    with pytest.raises(Forbidden, match="signature expired"):
        signer.verify(KEY, EXPIRES, signature, now=EXPIRES + 1)


def test_default_now_is_the_clock(signer: UrlSigner) -> None:
    with pytest.raises(Forbidden, match="signature expired"):
        signer.verify(KEY, 1, signer.sign(KEY, 1))
