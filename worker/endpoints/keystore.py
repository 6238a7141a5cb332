"""Endpoint keys: in the system keyring where it has a backend, else in a 0600 file."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

from worker.privatefile import write_private

log = logging.getLogger(__name__)

SERVICE = "promptspool"
KEYS_FILE_NAME = "endpoint-keys.json"


class KeyStore:
    """Where the keys of endpoints live, by endpoint name.

    The `keyring` library is used when it finds a real backend (Secret Service, KWallet,
    macOS Keychain, Windows Credential Locker); otherwise, or when the keyring fails (locked,
    no session bus), a JSON file in the config folder that only the user can read (0600).
    A key is never logged: errors say which endpoint, never what key.
    """

    def __init__(self, config_dir: Path, *, use_keyring: bool = True) -> None:
        self.file = config_dir / KEYS_FILE_NAME
        self._use_keyring = use_keyring

    @property
    def where(self) -> str:
        """Where keys go, for the settings dialog: the keyring's name or the file's path."""
        backend = self._keyring()
        return f"the system keyring ({backend.name})" if backend is not None else str(self.file)

    def get(self, name: str) -> str | None:
        backend = self._keyring()
        if backend is not None:
            try:
                value = backend.get_password(SERVICE, _user(name))
                if value:
                    return str(value)
            except Exception as exc:
                log.warning("keyring: cannot read the key of endpoint %r (%s); trying the "
                            "key file", name, type(exc).__name__)  # fmt: skip
        return self._read_file().get(name)

    def set(self, name: str, key: str) -> None:
        """Keep `key` for endpoint `name` (an empty key deletes it)."""
        if not key:
            self.delete(name)
            return
        backend = self._keyring()
        if backend is not None:
            try:
                backend.set_password(SERVICE, _user(name), key)
                self._drop_from_file(name)
                return
            except Exception as exc:
                log.warning("keyring: cannot store the key of endpoint %r (%s); it goes to %s",
                            name, type(exc).__name__, self.file)  # fmt: skip
        keys = self._read_file()
        keys[name] = key
        self._write_file(keys)

    def delete(self, name: str) -> None:
        backend = self._keyring()
        if backend is not None:
            # None stored there (PasswordDeleteError), or the keyring failed: the file goes too.
            with contextlib.suppress(Exception):
                backend.delete_password(SERVICE, _user(name))
        self._drop_from_file(name)

    def _keyring(self) -> Any | None:
        """The keyring backend, when the library has a usable one here."""
        if not self._use_keyring:
            return None
        try:
            import keyring
            from keyring.backends import fail

            backend = keyring.get_keyring()
        except Exception:
            return None
        if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
            return None
        return backend

    def _read_file(self) -> dict[str, str]:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("%s cannot be read (%s); no keys from it", self.file, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}

    def _drop_from_file(self, name: str) -> None:
        keys = self._read_file()
        if name in keys:
            del keys[name]
            self._write_file(keys)

    def _write_file(self, keys: dict[str, str]) -> None:
        write_private(self.file, json.dumps(keys, indent=2, sort_keys=True))


def _user(name: str) -> str:
    return f"endpoint:{name}"
