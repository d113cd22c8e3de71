"""Source locations, diagnostics and the one exception type of the config front end."""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class SourceLoc:
    """Where something was written: file name and 1-based line number."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Severity(enum.Enum):
    """How bad a diagnostic is."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in a configuration, pointing at the line the user wrote."""

    loc: SourceLoc | None
    severity: Severity
    message: str
    hint: str | None = None
    code: str | None = None  # short machine-readable tag, e.g. "unknown-keyword"

    def format(self) -> str:
        """Render as ``FILE:LINE: error|warning: message`` plus an optional hint line."""
        where = str(self.loc) if self.loc is not None else "<config>"
        text = f"{where}: {self.severity.value}: {self.message}"
        if self.hint:
            text += f"\n{where}: hint: {self.hint}"
        return text


def error(
    loc: SourceLoc | None, message: str, hint: str | None = None, code: str | None = None
) -> Diagnostic:
    """Build an error diagnostic."""
    return Diagnostic(loc, Severity.ERROR, message, hint, code)


def warning(
    loc: SourceLoc | None, message: str, hint: str | None = None, code: str | None = None
) -> Diagnostic:
    """Build a warning diagnostic."""
    return Diagnostic(loc, Severity.WARNING, message, hint, code)


class ConfigError(Exception):
    """A configuration cannot be read; carries the diagnostics that say why."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic) -> None:
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = diagnostics
        super().__init__("\n".join(d.format() for d in diagnostics))
