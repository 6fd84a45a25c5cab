"""Errors that reach users as one line of text.

The CLI turns a :class:`CadsearchError` into ``error: <message>`` on stderr and its ``exit_code``
(2 for bad usage or input, 1 for failures, as DESIGN.md specifies); anything else is a bug and shows a
traceback only with ``--debug``.
"""

from __future__ import annotations


class CadsearchError(Exception):
    """A failure that a user can understand and act on; ``str(err)`` is the whole message."""

    exit_code: int = 1


class InputError(CadsearchError):
    """Bad input from the user: a missing file, a corrupt mesh or image, an unknown id, a bad option."""

    exit_code = 2


class MeshLoadError(InputError):
    """A mesh file could not be read or is not a usable triangle mesh."""
