"""The ``colearn`` command line: ``main`` (parser, dispatch, exit statuses), ``options``
(argument types and helpers the commands share) and one module per command (group), each
with ``register(subcommands)`` adding its parser and the ``run`` functions it dispatches to.
"""
