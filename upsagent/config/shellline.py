# -*- test-case-name: tests.test_upsmonconf -*-
"""An operator's shell command line from upsmon.conf (``SHUTDOWNCMD``, ``NOTIFYCMD``).

NUT hands these lines to the shell: upsmon runs ``system(shutdowncmd)`` and, for a
notification, ``system("<notifycmd> \\"<message>\\"")``.  So a line may hold pipes,
redirections, ``&&`` and variables, and operators write them that way.  upsagent keeps the
operator's line exactly as written and runs it with ``/bin/sh -c <line>``, which is what
``system()`` does.  We never compose a shell string from our own data:

* :meth:`ShellLine.argv` without arguments is ``["/bin/sh", "-c", <line>]``, byte for byte
  upsmon's ``system(line)``.
* With arguments (the notification message), the arguments travel as real ``argv`` entries
  and a fixed script (:data:`WITH_ARGUMENTS`, a constant of this module, not built from any
  data) evaluates the operator's line with them appended as quoted words.  The line is
  parsed by the shell exactly as upsmon's ``"<cmd> \\"<message>\\""`` would be, but the
  message is never parsed by the shell: a ``$(...)``, ``"`` or backquote in a message is
  passed through as text, where upsmon would run it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SHELL", "WITH_ARGUMENTS", "ShellLine"]

SHELL = "/bin/sh"

#: ``sh -c WITH_ARGUMENTS <name> <line> <arg>...``: run ``<line> "<arg>"...``.
WITH_ARGUMENTS = 'line=$1; shift; eval "$line \\"\\$@\\""'


@dataclass(frozen=True)
class ShellLine:
    """One shell command line, as the operator wrote it in upsmon.conf."""

    line: str

    def argv(self, *arguments: str) -> tuple[str, ...]:
        """The argv that runs this line (with ``arguments`` appended as whole words)."""
        if not arguments:
            return (SHELL, "-c", self.line)
        return (SHELL, "-c", WITH_ARGUMENTS, "upsagent", self.line, *arguments)

    def __str__(self) -> str:
        return self.line
