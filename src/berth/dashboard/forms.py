"""Turning a submitted form into the API's request model, and refusals into field errors.

A form's fields are text; this maps them onto the same pydantic model the API validates
(`WorkloadCreate`, ...), so a rule is written once. A refusal, of the model or of the
domain (`DomainError.field`), becomes a message next to its field; one naming no field of
the form is shown above it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import ValidationError

from berth.domain.errors import DomainError


@dataclass
class FormErrors:
    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def add(self, name: str | None, message: str, known: set[str]) -> None:
        top = name.split(".", 1)[0] if name else None
        if top in known and top not in self.fields:
            self.fields[top] = message
        else:
            self.general.append(message)


def validation_errors(exc: ValidationError, known: set[str]) -> FormErrors:
    errors = FormErrors()
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        name = str(error["loc"][0]) if error["loc"] else None
        message = error["msg"].removeprefix("Value error, ")
        errors.add(name, f"{location}: {message}" if location else message, known)
    return errors


def domain_errors(exc: DomainError, known: set[str]) -> FormErrors:
    errors = FormErrors()
    errors.add(exc.field, exc.message, known)
    return errors


def optional_int(text: str) -> int | str | None:
    """An empty field is absent; anything else goes to the model as typed, to be checked."""
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def optional_float(text: str) -> float | str | None:
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def env_lines(text: str) -> dict[str, str] | str:
    """`KEY=value` per line; a line without `=` is handed on as text so the model refuses it."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            return text
        env[key.strip()] = value
    return env
