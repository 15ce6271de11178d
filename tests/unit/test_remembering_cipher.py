"""A container's token reads cost no KMS call while the stored token is the same ciphertext."""

from __future__ import annotations

from keaplink.connection.crypto import RememberingCipher


class CountingCipher:
    def __init__(self) -> None:
        self.decrypts = 0

    def encrypt(self, plaintext: str, context: dict[str, str]) -> bytes:
        return plaintext.encode()[::-1]

    def decrypt(self, ciphertext: bytes, context: dict[str, str]) -> str:
        self.decrypts += 1
        return ciphertext[::-1].decode()


def test_the_same_ciphertext_is_decrypted_once_a_new_one_afresh() -> None:
    inner = CountingCipher()
    cipher = RememberingCipher(inner)
    access = cipher.encrypt("access-1", {"field": "access"})
    for _ in range(5):  # five batches, the same stored token
        assert cipher.decrypt(access, {"field": "access"}) == "access-1"
    assert inner.decrypts == 1
    assert cipher.decrypt(access, {"field": "refresh"}) == "access-1"  # another context: KMS is asked
    assert cipher.decrypt(cipher.encrypt("access-2", {"field": "access"}), {"field": "access"}) == "access-2"
    assert inner.decrypts == 3


def test_it_remembers_a_few_only() -> None:
    inner = CountingCipher()
    cipher = RememberingCipher(inner, size=2)
    blobs = [cipher.encrypt(f"t{i}", {}) for i in range(3)]
    for blob in blobs:
        cipher.decrypt(blob, {})
    cipher.decrypt(blobs[0], {})  # forgotten: the oldest went first
    assert inner.decrypts == 4
