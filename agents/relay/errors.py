"""The relay's exception tree."""

from __future__ import annotations

from http import HTTPStatus


class RelayError(Exception):
    """The relay refused a signed call, cannot be reached, or cannot start."""


class Refused(RelayError):
    """The relay (or the contract, checked by the relay) refuses a request; ``status`` is
    the HTTP status it is answered with (409 unless the request itself is at fault)."""

    def __init__(self, message: str, status: int = HTTPStatus.CONFLICT):
        super().__init__(message)
        self.status = int(status)
