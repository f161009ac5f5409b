"""colearn's ``colearn.utils.results``: :class:`Result`, :class:`Results` and
:func:`print_results`, whose one home is :mod:`colearn_core.results`."""

from colearn_core.results import Result, Results, print_results

__all__ = ["Result", "Results", "print_results"]
