"""Small strict readers for YAML data, shared by the GPU-model, node-description and node-config
loaders: every wrong key or value is reported with its dotted path ("mig.profiles[2].memoryMiB")
so that a typo in a data file is found in seconds, not by a wrong ResourceSlice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class DataError(ValueError):
    """A data file or dict that does not have the expected shape. The message names the field."""


def load_yaml(path: str | Path, what: str) -> Any:
    """Read a YAML file, turning I/O and syntax errors into DataError naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{what} {p}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} {p}: cannot read: not UTF-8 text (binary?): byte {exc.start} is "
                        f"0x{exc.object[exc.start]:02x}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataError(f"{what} {p}: not valid YAML: {exc}") from None


def mapping(value: Any, where: str, allowed: set[str], required: set[str] = frozenset()) -> dict[str, Any]:
    """Check `value` is a mapping with only `allowed` keys and all `required` ones."""
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected a mapping, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise DataError(f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")
    missing = sorted(required - set(value))
    if missing:
        raise DataError(f"{where}: missing required field(s) {', '.join(missing)}")
    return value


def integer(value: Any, where: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise DataError(f"{where}: must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise DataError(f"{where}: must be <= {maximum}, got {value}")
    return value


def string(value: Any, where: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise DataError(f"{where}: expected a non-empty string, got {value!r}")
    if choices is not None and value not in choices:
        raise DataError(f"{where}: expected one of {', '.join(choices)}; got {value!r}")
    return value


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise DataError(f"{where}: expected true or false, got {value!r}")
    return value


def sequence(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise DataError(f"{where}: expected a list, got {type(value).__name__}")
    return value
