"""The keys protecting personal data: encryption at rest (Fernet) and the keyed hash that recognises a person.

Each key comes from settings, or, when unset (the embedded default), from a file in the data dir that is
generated on first start with 0600 permissions. A malformed key refuses start-up with a message that says
which key and how to make a good one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from services.intake.settings import IntakeSettings
from shared.settings import ConfigurationError

log = logging.getLogger(__name__)

ENCRYPTION_KEY_FILE = "intake-encryption.key"
MATCHING_KEY_FILE = "intake-matching.key"
_MAKE_KEY = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


class UnreadablePersonalData(RuntimeError):
    """Stored personal data cannot be decrypted with the configured keys (a bug or a wrong key, never input)."""


class PersonalDataCipher:
    """Encrypts and decrypts personal data at rest; the first key encrypts, every key decrypts (rotation)."""

    def __init__(self, keys: list[bytes]) -> None:
        self._first = Fernet(keys[0])
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode("ascii")

    def seal(self, data: bytes) -> bytes:
        """Encrypt raw bytes (a dead-lettered submission, which need not even be text)."""
        return self._fernet.encrypt(data)

    def unseal(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise UnreadablePersonalData("a sealed dead letter cannot be decrypted with the configured keys") from exc

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise UnreadablePersonalData(
                "stored personal data cannot be decrypted: REROUTE_INTAKE_ENCRYPTION_KEY (or the kept key file) "
                "is not the key it was written with; add the old key after the new one, comma-separated"
            ) from exc

    def rotate(self, token: str) -> str | None:
        """`token` re-encrypted under the first key (MultiFernet.rotate), or None when it is under it already."""
        try:
            raw = token.encode("ascii")
        except UnicodeError as exc:
            raise UnreadablePersonalData("stored personal data is not a Fernet token") from exc
        rotated = self.rotate_sealed(raw)
        return None if rotated is None else rotated.decode("ascii")

    def rotate_sealed(self, token: bytes) -> bytes | None:
        """The same for raw tokens (sealed dead letters). Raises UnreadablePersonalData when no key opens it."""
        try:
            self._first.decrypt(token)
            return None
        except InvalidToken:
            pass
        try:
            return self._fernet.rotate(token)
        except InvalidToken as exc:
            raise UnreadablePersonalData("stored personal data cannot be decrypted with any configured key") from exc


class PersonMatcher:
    """A keyed hash (HMAC-SHA256) of already normalised name parts and birth date: equal for the same person.
    The first key hashes; older keys (after a rotation) are kept only to recognise people stored under them until
    `reroute keys rematch` has moved them to the first."""

    def __init__(self, key: bytes, *older: bytes) -> None:
        self._keys = (key, *older)

    def match_key(self, *parts: str) -> str:
        """The hash under the first key."""
        return self._hash(self._keys[0], parts)

    def match_keys(self, *parts: str) -> list[str]:
        """The hash under each key, the first key's first."""
        return [self._hash(key, parts) for key in self._keys]

    @staticmethod
    def _hash(key: bytes, parts: tuple[str, ...]) -> str:
        return hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class IntakeKeys:
    cipher: PersonalDataCipher
    matcher: PersonMatcher


def load_keys(settings: IntakeSettings) -> IntakeKeys:
    """The keys from settings, else those kept in the data dir (generated on first start)."""
    external_db = settings.database_url is not None
    encryption, where = _configured_or_kept(settings.intake_encryption_key, settings.data_dir / ENCRYPTION_KEY_FILE,
                                            "REROUTE_INTAKE_ENCRYPTION_KEY", external_db=external_db)
    fernet_keys = [k.strip() for k in encryption.split(",") if k.strip()]
    if not fernet_keys:
        raise ConfigurationError(f"{where} is empty: give a Fernet key, made with {_MAKE_KEY}")
    for number, key in enumerate(fernet_keys, start=1):
        raw = _decoded(key)
        if raw is None or len(raw) != 32:
            raise ConfigurationError(f"{where}: key #{number} is not a Fernet key (32 url-safe base64-encoded bytes); "
                                     f"make one with {_MAKE_KEY}")
    matching, where = _configured_or_kept(settings.intake_matching_key, settings.data_dir / MATCHING_KEY_FILE,
                                          "REROUTE_INTAKE_MATCHING_KEY", external_db=external_db)
    matching_keys = [k.strip() for k in matching.split(",") if k.strip()]
    if not matching_keys:
        raise ConfigurationError(f"{where} is empty: give a key of at least 32 url-safe base64-encoded bytes, made "
                                 f"with {_MAKE_KEY}")
    raw_matching = [_decoded(key) for key in matching_keys]
    for number, raw in enumerate(raw_matching, start=1):
        if raw is None or len(raw) < 32:
            which = f" (key #{number})" if len(matching_keys) > 1 else ""
            raise ConfigurationError(f"{where} is not at least 32 url-safe base64-encoded bytes{which}; make a key "
                                     f"with {_MAKE_KEY} (to rotate it, put the new key in front of the old one, "
                                     "comma-separated, and run `reroute keys rematch`)")
    first, *older = [raw for raw in raw_matching if raw is not None]
    return IntakeKeys(PersonalDataCipher([k.encode() for k in fernet_keys]), PersonMatcher(first, *older))


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def _decoded(key: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(key.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeError):
        return None


def _configured_or_kept(
    configured: SecretStr | None, path: Path, variable: str, *, external_db: bool
) -> tuple[str, str]:
    """The key's text and where it came from (for error messages)."""
    if configured is not None:
        return configured.get_secret_value(), variable
    if external_db:
        raise ConfigurationError(
            f"{variable} is not set. With an external database (DATABASE_URL) intake will not generate a key on "
            f"its own: make one with {_MAKE_KEY}, keep it in your secret store, and set it"
        )
    try:
        return _kept_key(path), f"{path} (used because {variable} is not set)"
    except OSError as exc:
        raise ConfigurationError(f"{variable} is not set and {path} cannot be read or created: {exc.strerror}") from None


def _kept_key(path: Path) -> str:
    """The key in `path`, created atomically with mode 0600 if missing (replicas racing agree on one)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(new_key() + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            try:
                os.link(tmp, path)  # atomic: fails if another replica created it first
                log.info("generated a new key in %s (0600); back it up with the data", path)
            except FileExistsError:
                pass
        finally:
            tmp.unlink(missing_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o): run chmod 600 %s", path, mode, path)
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if not text:
        raise ConfigurationError(f"{path} is empty: restore the key from a backup (or delete the file on a fresh "
                                 "install to generate one)")
    return text
