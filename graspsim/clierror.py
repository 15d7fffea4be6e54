"""The one error type of graspsim's command lines.

A user mistake (unknown name, bad number, a directory that holds another run)
is raised as :class:`UserError`: click prints ``Error: <message>`` on one line
and exits with status 2, never a traceback.
"""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """A user-facing error: printed as ``Error: ...``, exit status 2."""

    exit_code = 2
