"""One way for an object that holds something to be released: ``close()``, or ``with``."""

from __future__ import annotations

from typing import Self


class Closing:
    """Base of whatever holds a connection, a directory or a chain: ``with obj: ...``
    closes it on the way out, as ``obj.close()`` does."""

    def close(self) -> None:
        """Releases what the object holds (nothing, unless a subclass says otherwise)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
