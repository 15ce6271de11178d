"""Token values are encrypted with KMS before they are written, so a table read alone reveals nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class Cipher(Protocol):
    def encrypt(self, plaintext: str, context: dict[str, str]) -> bytes: ...

    def decrypt(self, ciphertext: bytes, context: dict[str, str]) -> str: ...


class KmsCipher:
    """KMS Encrypt/Decrypt with an encryption context naming the connection and the field.

    Tokens are far below KMS's 4 KB limit, so no envelope key is needed; the context stops a ciphertext
    from one field or connection being replayed into another.
    """

    def __init__(self, kms: Callable[[], Any], key_id: Callable[[], str]) -> None:
        self._kms = kms
        self._key_id = key_id

    def encrypt(self, plaintext: str, context: dict[str, str]) -> bytes:
        answer = self._kms().encrypt(KeyId=self._key_id(), Plaintext=plaintext.encode(), EncryptionContext=context)
        return bytes(answer["CiphertextBlob"])

    def decrypt(self, ciphertext: bytes, context: dict[str, str]) -> str:
        answer = self._kms().decrypt(CiphertextBlob=ciphertext, EncryptionContext=context)
        return bytes(answer["Plaintext"]).decode()


class RememberingCipher:
    """A cipher that remembers the last few plaintexts it decrypted, per ciphertext and context, for the
    container's life: a batch's token read then costs no KMS call when the stored token has not changed (two
    Decrypts per batch before, the access and the refresh token). A new token is a new ciphertext: read afresh."""

    def __init__(self, inner: Cipher, size: int = 4) -> None:
        self._inner = inner
        self._size = size
        self._seen: dict[tuple[bytes, tuple[tuple[str, str], ...]], str] = {}

    def encrypt(self, plaintext: str, context: dict[str, str]) -> bytes:
        return self._inner.encrypt(plaintext, context)

    def decrypt(self, ciphertext: bytes, context: dict[str, str]) -> str:
        key = (bytes(ciphertext), tuple(sorted(context.items())))
        found = self._seen.get(key)
        if found is None:
            found = self._inner.decrypt(ciphertext, context)
            if len(self._seen) >= self._size:
                self._seen.pop(next(iter(self._seen)))
            self._seen[key] = found
        return found
