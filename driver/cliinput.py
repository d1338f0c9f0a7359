"""Reading the files and checking the flag values that the `gpu-dra` commands are given.

Why one module: every command that takes a file (`allocate -f`, `schedule -f/--config`, `simulate
--cluster/--workload`, `local up --cluster`, `controller --config`, `bench trace --config`) used to
read it its own way, and each way let some bad input escape as a traceback (a binary file is a
UnicodeDecodeError, a NUL byte a multi-line YAML error). Here a file that cannot be used is always
an `InputFileError` whose message is one line naming the file: "FILE: No such file or directory",
"FILE: not UTF-8 text (binary?)", "FILE: not YAML/JSON at line N, column M: PROBLEM". The error is
typed (`kind`, `detail`, `line`) so that a caller can word it its own way without parsing it.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

MISSING, UNREADABLE, NOT_TEXT, BAD_YAML, NOT_OBJECT = "missing", "unreadable", "not-text", "bad-yaml", "not-object"


@dataclass(eq=False)
class InputFileError(ValueError):
    """A file that cannot be used. `str()` is "[WHAT ]PATH: DETAIL", one line."""

    path: str
    kind: str  # MISSING, UNREADABLE, NOT_TEXT, BAD_YAML or NOT_OBJECT
    detail: str  # what is wrong, without the path: "No such file or directory", "not UTF-8 text (binary?)"
    what: str = ""  # how the command names the file ("--config"); empty for plain -f files
    line: int | None = None  # 1-based, for BAD_YAML when known
    column: int | None = None  # 1-based, for BAD_YAML when known
    problem: str = ""  # for BAD_YAML: what the YAML parser said, one line

    @property
    def position(self) -> str:
        """" at line N, column M" (or "" when not known), to go after a caller's own wording."""
        if self.line is None:
            return ""
        return f" at line {self.line}" + (f", column {self.column}" if self.column else "")

    def __post_init__(self) -> None:
        ValueError.__init__(self, str(self))

    def __str__(self) -> str:
        return f"{self.what + ' ' if self.what else ''}{self.path}: {self.detail}"


def read_text(path: str | Path, what: str = "") -> str:
    """The file's text ('-' = stdin), decoded as UTF-8 (a BOM is allowed)."""
    name = str(path)
    try:
        if name == "-":
            stream = getattr(sys.stdin, "buffer", None)
            data = stream.read() if stream is not None else sys.stdin.read().encode("utf-8", "surrogateescape")
        else:
            data = Path(name).read_bytes()
    except FileNotFoundError as exc:
        raise InputFileError(name, MISSING, exc.strerror or "No such file or directory", what) from None
    except OSError as exc:
        raise InputFileError(name, UNREADABLE, exc.strerror or str(exc), what) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(name, NOT_TEXT, f"not UTF-8 text (binary?): byte {exc.start} is 0x{data[exc.start]:02x}",
                             what) from None


def _yaml_error(name: str, text: str, exc: yaml.YAMLError, what: str) -> InputFileError:
    """One line from PyYAML's multi-line message: where, and what its parser said."""
    line = column = None
    problem = ""
    if isinstance(exc, yaml.reader.ReaderError):  # a control character: most often a binary file
        line = text.count("\n", 0, exc.position) + 1
        problem = f"character #x{exc.character:04x} is not allowed in YAML (binary?)" \
            if isinstance(exc.character, int) else str(exc.reason)
    elif isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
        problem = exc.problem or exc.context or ""
    problem = " ".join((problem or str(exc)).split())
    err = InputFileError(name, BAD_YAML, "", what, line, column, problem)
    err.detail = f"not YAML/JSON{err.position}: {problem}"
    ValueError.__init__(err, str(err))
    return err


def load_yaml_all(path: str | Path, what: str = "") -> list[Any]:
    """Every document of a YAML (or JSON) file, empty ones included as None."""
    name = str(path)
    text = read_text(name, what)
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        raise _yaml_error(name, text, exc, what) from None


def load_yaml(path: str | Path, what: str = "") -> Any:
    """The one document of a YAML (or JSON) file (None when empty); several documents are an error."""
    name = str(path)
    text = read_text(name, what)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(name, text, exc, what) from None


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class FlagError(ValueError):
    """A flag value that cannot be used; the message names the flag."""


def load_objects(path: str | Path, what: str = "") -> list[tuple[int, dict[str, Any]]]:
    """(document index, object) for the non-empty documents of a manifest file (`kubectl get -o
    yaml`, several `---` documents), each required to be an object: what `-f` of `gpu-dra
    allocate|schedule` reads."""
    out = []
    for i, doc in enumerate(load_yaml_all(path, what)):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise InputFileError(str(path), NOT_OBJECT,
                                 f"document {i}: expected a Kubernetes object, got {type(doc).__name__}", what)
        out.append((i, doc))
    return out


def rfc3339(value: str, flag: str) -> str:
    """`value` checked as an RFC 3339 time and written as the API server writes metav1.Time (UTC,
    whole seconds: "2026-01-02T03:04:05Z"), so that it sorts with the times in the input."""
    when = None
    if _RFC3339.fullmatch(value):
        try:
            when = dt.datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            when = None
    if when is None:
        raise FlagError(f"{flag}: expected an RFC 3339 time such as 2026-01-02T15:04:05Z, got {value!r}")
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
