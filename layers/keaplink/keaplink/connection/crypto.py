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
