"""Secret encryption and credential hashing.

Secret values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from
the data directory's `secret.key` (or `BERTH_SECRET_KEY`); the database holds only ciphertext.
API keys are stored as SHA-256 digests (they are long random strings, so a fast hash is
enough); passwords are hashed in `berth.domain.passwords`.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken


class SecretCipher:
    def __init__(self, key_material: bytes) -> None:
        digest = hashlib.sha256(b"berth-secrets:" + key_material).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode())

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(ciphertext).decode()
        except InvalidToken as exc:
            raise ValueError(
                "a secret cannot be decrypted with this data directory's secret key; "
                "was secret.key replaced?"
            ) from exc


def hash_api_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def new_api_key() -> str:
    return "nv_sk_" + secrets.token_urlsafe(32)
