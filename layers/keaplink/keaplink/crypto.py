"""Token values are encrypted with KMS before they are written, so a table read alone reveals nothing."""

from __future__ import annotations

from typing import Protocol

from keaplink import aws
from keaplink.config import get_settings, require


class Cipher(Protocol):
    def encrypt(self, plaintext: str, context: dict[str, str]) -> bytes: ...

    def decrypt(self, ciphertext: bytes, context: dict[str, str]) -> str: ...


class KmsCipher:
    """KMS Encrypt/Decrypt with an encryption context naming the connection and the field.

    Tokens are far below KMS's 4 KB limit, so no envelope key is needed; the context stops a ciphertext
    from one field or connection being replayed into another.
    """

    def __init__(self, key_id: str | None = None) -> None:
        self._key_id = key_id

    @property
    def key_id(self) -> str:
        return self._key_id or require(get_settings().token_kms_key_id, "TOKEN_KMS_KEY_ID")

    def encrypt(self, plaintext: str, context: dict[str, str]) -> bytes:
        answer = aws.client("kms").encrypt(
            KeyId=self.key_id, Plaintext=plaintext.encode(), EncryptionContext=context
        )
        return bytes(answer["CiphertextBlob"])

    def decrypt(self, ciphertext: bytes, context: dict[str, str]) -> str:
        answer = aws.client("kms").decrypt(CiphertextBlob=ciphertext, EncryptionContext=context)
        return bytes(answer["Plaintext"]).decode()
