"""Learner keys: eth-account encrypted keystores (or an env var for throwaway keys).

Private keys are never printed or logged; errors name the file, never its content.
"""

from __future__ import annotations

import getpass
import json
import os
import warnings
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from agents._utils.shutdown import Interrupted

PASSWORD_ENV = "COLEARN_PASSWORD"
PRIVATE_KEY_ENV = "COLEARN_PRIVATE_KEY"


class KeyLoadError(Exception):
    """A key that cannot be loaded: missing file, bad format, wrong password."""


def read_password(password_file: Path | None = None, *, prompt: bool = True,
                  confirm: bool = False) -> str:
    """The keystore password: from ``password_file``, else ``$COLEARN_PASSWORD``, else
    asked on the terminal."""
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise KeyLoadError(f"cannot read password file {password_file}: {exc.strerror}") from None
    if PASSWORD_ENV in os.environ:
        return os.environ[PASSWORD_ENV]
    if not prompt:
        raise KeyLoadError(f"no password: give --password-file or set {PASSWORD_ENV}")
    password = _ask("keystore password: ")
    if confirm and _ask("again: ") != password:
        raise KeyLoadError("the passwords differ")
    return password


def _ask(prompt: str) -> str:
    """Asks on the terminal; without one (getpass would read stdin, echoing) or when the
    prompt is closed or interrupted, a :class:`KeyLoadError` naming the alternatives."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", getpass.GetPassWarning)
            return getpass.getpass(prompt)
    except getpass.GetPassWarning:
        reason = "no terminal to ask for the keystore password on"
    except EOFError:
        reason = "no keystore password entered (end of input)"
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted):  # a signal to stop the command: not an answer
            raise
        reason = "no keystore password entered (interrupted)"
    raise KeyLoadError(f"{reason}: give --password-file FILE or set {PASSWORD_ENV}")


def create_keystore(path: Path, password: str) -> str:
    """Creates a new account, encrypted with ``password``, at ``path``; returns its address."""
    if path.exists():
        raise KeyLoadError(f"{path} exists: refusing to overwrite a keystore")
    account = Account.create()
    keystore = Account.encrypt(account.key, password)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(keystore, handle)
    return account.address


def load_keystore(path: Path, password: str) -> LocalAccount:
    try:
        keystore = json.loads(path.read_text())
    except OSError as exc:
        raise KeyLoadError(f"cannot read keystore {path}: {exc.strerror}") from None
    except (ValueError, RecursionError):
        raise KeyLoadError(f"{path} is not a keystore (not JSON)") from None
    try:
        key = Account.decrypt(keystore, password)
    except ValueError as exc:
        reason = "wrong password" if "MAC mismatch" in str(exc) else "not a valid keystore"
        raise KeyLoadError(f"cannot unlock keystore {path}: {reason}") from None
    except NotImplementedError:  # eth-keyfile's, for keystore versions other than 3
        raise KeyLoadError(f"{path} is not a version 3 keystore") from None
    except (KeyError, TypeError, AttributeError):
        raise KeyLoadError(f"{path} is not a valid keystore") from None
    return Account.from_key(key)


def account_from_env() -> LocalAccount:
    value = os.environ.get(PRIVATE_KEY_ENV)
    if not value:
        raise KeyLoadError(f"no key: give --keystore FILE or set {PRIVATE_KEY_ENV}")
    try:
        return Account.from_key(value)
    except (ValueError, TypeError):
        raise KeyLoadError(f"{PRIVATE_KEY_ENV} is not a valid private key") from None


def load_account(keystore: Path | None, password_file: Path | None = None) -> LocalAccount:
    """The signing account: an encrypted keystore if given, else ``$COLEARN_PRIVATE_KEY``."""
    if keystore is not None:
        return load_keystore(keystore, read_password(password_file))
    return account_from_env()
