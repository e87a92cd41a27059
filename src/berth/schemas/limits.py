"""Size rules of request fields that one `max_length` cannot state, shared by both dialects.

A task's command and environment reach the kernel as `execve` arguments, which Linux caps
(128 KiB per string, about 2 MiB for all of them together with the default stack limit); the
limits here keep every accepted command and environment launchable, and far below the
request body limit. Errors name the field and the rule: `command: at most 1000 arguments`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

MAX_COMMAND_CHARS = 65536
"""A string command, and each argument of an argv list."""
MAX_COMMAND_ARGS = 1000
MAX_COMMAND_TOTAL_CHARS = 256 * 1024
"""All arguments of an argv list together."""
MAX_ENV_ENTRIES = 200
MAX_ENV_VALUE_CHARS = 65536
MAX_ENV_TOTAL_BYTES = 256 * 1024
"""A workload's `env`, names and values (UTF-8) together."""
MAX_ENVIRONMENT_BYTES = 512 * 1024
"""A task's whole environment, `env` and secrets together (checked when a secret is set)."""
MAX_SECRETS = 100
"""Secrets per workload."""
MAX_EXEC_STDIN_CHARS = 512 * 1024
"""Exec's `stdin`; half the default request body limit, so a request at the limit fits."""
MAX_RUN_ID_CHARS = 64
"""A run id named in a request (`task`); real ones are about 20 characters."""
MIN_TERMINAL_COLS, MAX_TERMINAL_COLS = 10, 1000
MIN_TERMINAL_ROWS, MAX_TERMINAL_ROWS = 5, 1000
"""A terminal's initial size (a shell's `cols` and `rows`, in its body or its URL)."""
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
"""Display names: any characters but control characters (no newlines or escapes)."""


def _command(value: Any) -> str | list[str]:
    if isinstance(value, str):
        if len(value) > MAX_COMMAND_CHARS:
            raise PydanticCustomError(
                "command_too_long",
                "a command string is at most {limit} characters",
                {"limit": MAX_COMMAND_CHARS},
            )
        return value
    if not isinstance(value, list):
        raise PydanticCustomError(
            "command_type", "must be a string or a list of strings (the argv)"
        )
    for index, arg in enumerate(value):
        if not isinstance(arg, str):
            raise PydanticCustomError(
                "command_type",
                "argument {index} is not a string: an argv is a list of strings",
                {"index": index},
            )
    if len(value) > MAX_COMMAND_ARGS:
        raise PydanticCustomError(
            "command_too_many_args",
            "at most {limit} arguments",
            {"limit": MAX_COMMAND_ARGS},
        )
    for index, arg in enumerate(value):
        if len(arg) > MAX_COMMAND_CHARS:
            raise PydanticCustomError(
                "command_arg_too_long",
                "argument {index} is longer than {limit} characters",
                {"index": index, "limit": MAX_COMMAND_CHARS},
            )
    if sum(len(arg) for arg in value) > MAX_COMMAND_TOTAL_CHARS:
        raise PydanticCustomError(
            "command_too_long",
            "at most {limit} characters in all arguments together",
            {"limit": MAX_COMMAND_TOTAL_CHARS},
        )
    return value


Command = Annotated[
    str | list[str],
    PlainValidator(_command),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": MAX_COMMAND_CHARS},
                {
                    "type": "array",
                    "items": {"type": "string", "maxLength": MAX_COMMAND_CHARS},
                    "maxItems": MAX_COMMAND_ARGS,
                },
            ],
            "description": f"At most {MAX_COMMAND_CHARS} characters per string or argument, "
            f"{MAX_COMMAND_ARGS} arguments and {MAX_COMMAND_TOTAL_CHARS} characters in all.",
        }
    ),
]
"""A string run by `/bin/sh -c`, or an argv list, within the sizes above."""


def environment_bytes(env: dict[str, str]) -> int:
    """Bytes the variables take in a task's environment (`NAME=value` and a NUL each)."""
    return sum(len(name.encode()) + len(value.encode()) + 2 for name, value in env.items())


def _env_total(env: dict[str, str]) -> dict[str, str]:
    if environment_bytes(env) > MAX_ENV_TOTAL_BYTES:
        raise PydanticCustomError(
            "env_too_large",
            "at most {limit} bytes of names and values in total",
            {"limit": MAX_ENV_TOTAL_BYTES},
        )
    return env


EnvTotal = AfterValidator(_env_total)
