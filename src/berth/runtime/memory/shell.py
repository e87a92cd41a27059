"""A toy shell: what the in-memory runtime's tasks and commands do, without any process.

The in-memory runtime (`berth.runtime.memory`) runs nothing; a task's command and every
command run in a task are interpreted here instead. The handful of programs below behave as
their busybox namesakes do in the images the tests use, so one argv means the same on the
in-memory runtime and on a real engine (the runtime contract tests give both the same
commands):

`sh -c SCRIPT` (and `sh` reading its script from standard input), `echo [-n] [-e]`, `printf`,
`cat [FILE...]`, `true`, `false`, `:`, `sleep N|infinity`, `env`, `hostname`,
`touch`, `mkdir`, `rm`, `stty size` (on a terminal), `exec COMMAND`, and
`httpd [-f] [-p [ADDR:]PORT] [-h DIR]`, serving the files under DIR (`index.html` for a
directory) and 404 for any other path.

Scripts are commands joined by `;`, `&&`, `||` or newlines (`exit [N]` ends one), with
`$NAME`, `${NAME}` and `$?` expanded and the redirections `>`, `>>`, `2>`, `>&2`, `1>&2` and
`2>&1`. Anything else is beyond the toy: a program not listed is "not found" (exit 127 in a
script), as it would be in an image without it.

A program is a generator of effects (output written, time slept, a port listened on, standard
input wanted) returning its exit code. Whoever runs it decides what the effects mean: a task
sleeps on the runtime's clock, a one-off command adds the sleep to its time against its
timeout.
"""

from __future__ import annotations

import itertools
import posixpath
import re
import shlex
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class Write:
    stream: Stream
    data: bytes


@dataclass(frozen=True)
class Sleep:
    seconds: float | None
    """None: for ever (a server)."""


@dataclass(frozen=True)
class Listen:
    """The program now serves HTTP on `port` (inside its task), files from `root`."""

    port: int
    root: str


@dataclass(frozen=True)
class ReadInput:
    """The program reads its whole standard input; the runner sends it (bytes) back."""


Effect = Write | Sleep | Listen | ReadInput
Program = Generator[Effect, bytes | None, int]

BIN_DIRS = ("/bin", "/usr/bin", "/sbin", "/usr/sbin")


class Files:
    """A task's file system: paths under a volume's mount path live in that volume (kept
    across tasks), the rest in the task itself (lost with it). Directories are implicit."""

    def __init__(self, mounts: Mapping[str, dict[str, bytes]] | None = None) -> None:
        self._own: dict[str, bytes] = {}
        self._mounts = dict(mounts or {})
        self.cwd = "/root"

    def _place(self, path: str) -> tuple[dict[str, bytes], str]:
        full = posixpath.normpath(posixpath.join(self.cwd, path))
        for mount in sorted(self._mounts, key=len, reverse=True):
            if full == mount or full.startswith(mount.rstrip("/") + "/"):
                return self._mounts[mount], posixpath.relpath(full, mount)
        return self._own, full

    def read(self, path: str) -> bytes | None:
        where, key = self._place(path)
        return where.get(key)

    def write(self, path: str, data: bytes, *, append: bool = False) -> None:
        where, key = self._place(path)
        where[key] = (where.get(key, b"") if append else b"") + data

    def remove(self, path: str) -> bool:
        where, key = self._place(path)
        return where.pop(key, None) is not None


@dataclass
class Context:
    """What a program sees: its environment, files, host name and terminal (if any)."""

    env: dict[str, str]
    files: Files
    hostname: str = "localhost"
    terminal: tuple[int, int] | None = None
    """(columns, rows) when the program runs on a terminal."""
    status: int = 0
    """`$?`: the last command's exit code."""
    exited: bool = False
    """Whether a script ran `exit` (an interactive shell then ends)."""
    programs: Mapping[str, Callable[[list[str], Context], Program]] = field(
        default_factory=lambda: BUILTINS
    )


class ShellExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def find_program(name: str, ctx: Context | None = None) -> str | None:
    """The builtin `name` runs (`echo`, `/bin/echo`), or None when the image lacks it."""
    programs = ctx.programs if ctx is not None else BUILTINS
    if "/" in name:
        directory, base = posixpath.split(name)
        return base if directory in BIN_DIRS and base in programs else None
    return name if name in programs else None


def run_argv(argv: list[str], ctx: Context) -> Program:
    """Run a program found with `find_program` (the caller checks it exists first)."""
    name = find_program(argv[0], ctx)
    assert name is not None, f"{argv[0]} is not a known program"
    return (yield from ctx.programs[name](argv[1:], ctx))


# -- scripts -----------------------------------------------------------------------------------

_CONNECTORS = (";", "&&", "||")
_FD_MARK = "\x00fd"
_FD_PREFIX = re.compile(r"(^|[\s;&|])([12])(?=>)")
_REDIRECTS = (">", ">>", ">&")


@dataclass
class _Command:
    words: list[str]
    routes: dict[Stream, tuple[str, str, bool]]
    """stream -> ("stream", stdout|stderr, _) or ("file", path, append)."""


def _split(script: str) -> list[tuple[str, list[str]]]:
    """(connector before it, tokens) per command; the first connector is ';'."""
    # A descriptor glued to a redirection (`2>&1`) is marked, so `echo 1 >&2` stays an echo.
    marked = _FD_PREFIX.sub(lambda m: f"{m.group(1)}{_FD_MARK}{m.group(2)}", script)
    lexer = shlex.shlex(marked.replace("\n", ";"), posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    commands: list[tuple[str, list[str]]] = []
    connector, tokens = ";", list[str]()
    for token in lexer:
        if token in _CONNECTORS:
            if tokens:
                commands.append((connector, tokens))
            connector, tokens = token, []
        else:
            tokens.append(token)
    if tokens:
        commands.append((connector, tokens))
    return commands


def _parse(tokens: list[str]) -> _Command:
    words: list[str] = []
    routes: dict[Stream, tuple[str, str, bool]] = {}
    items = iter(range(len(tokens)))
    for i in items:
        token = tokens[i]
        if token in _REDIRECTS and i + 1 < len(tokens):
            source: Stream = "stdout"
            if words and words[-1] in (_FD_MARK + "1", _FD_MARK + "2"):
                source = "stderr" if words.pop().endswith("2") else "stdout"
            target = tokens[i + 1]
            next(items, None)
            if token == ">&":
                routes[source] = ("stream", "stderr" if target == "2" else "stdout", False)
            else:
                routes[source] = ("file", target, token == ">>")
            continue
        words.append(token)
    return _Command(words, routes)


_VARIABLE = re.compile(r"\$(\?|\{(\w+)\}|(\w+))")


def _expand(word: str, ctx: Context) -> str:
    def value(match: re.Match[str]) -> str:
        if match.group(1) == "?":
            return str(ctx.status)
        return ctx.env.get(match.group(2) or match.group(3), "")

    return _VARIABLE.sub(value, word)


def run_script(script: str, ctx: Context) -> Program:
    """Run a script as `sh -c` does; `exit` ends it with its code."""
    try:
        commands = _split(script)
    except ValueError as exc:
        yield Write("stderr", f"sh: syntax error: {exc}\n".encode())
        return 2
    try:
        for connector, tokens in commands:
            if (connector == "&&" and ctx.status != 0) or (connector == "||" and ctx.status == 0):
                continue
            command = _parse(tokens)
            ctx.status = yield from _run_command(command, ctx)
    except ShellExit as done:
        ctx.status, ctx.exited = done.code, True
    return ctx.status


def _run_command(command: _Command, ctx: Context) -> Program:
    words = [_expand(word, ctx) for word in command.words]
    for kind, target, append in command.routes.values():
        if kind == "file" and not append:
            ctx.files.write(_expand(target, ctx), b"")
    if not words:
        return 0
    if words[0] == "exit":
        return (yield from _exit(words[1:], ctx))
    if words[0] == "exec" and len(words) > 1:
        words = words[1:]
    if find_program(words[0], ctx) is None:
        yield Write("stderr", f"sh: {words[0]}: not found\n".encode())
        return 127
    program = run_argv(words, ctx)
    if not command.routes:
        return (yield from program)
    reply: bytes | None = None
    while True:
        try:
            effect = program.send(reply)
        except StopIteration as stop:
            code: int = stop.value
            return code
        reply = None
        if isinstance(effect, Write) and effect.stream in command.routes:
            kind, target, _append = command.routes[effect.stream]
            if kind == "file":
                ctx.files.write(_expand(target, ctx), effect.data, append=True)
                continue
            effect = Write("stderr" if target == "stderr" else "stdout", effect.data)
        reply = yield effect


# -- programs ----------------------------------------------------------------------------------


def _sh(args: list[str], ctx: Context) -> Program:
    if args[:1] == ["-c"] and len(args) >= 2:
        subshell = Context(**{**vars(ctx), "status": 0, "exited": False})
        return (yield from run_script(args[1], subshell))
    if not args:
        script = yield ReadInput()
        return (yield from run_script((script or b"").decode(errors="replace"), ctx))
    yield Write("stderr", b"sh: only 'sh -c SCRIPT' and 'sh' reading a script are simulated\n")
    return 2


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r").replace("\\\\", "\\")


def _echo(args: list[str], _ctx: Context) -> Program:
    newline, escapes = True, False
    while args and args[0] in ("-n", "-e", "-ne", "-en"):
        newline = newline and "n" not in args[0]
        escapes = escapes or "e" in args[0]
        args = args[1:]
    text = " ".join(args)
    text = (_unescape(text) if escapes else text) + ("\n" if newline else "")
    yield Write("stdout", text.encode())
    return 0


def _printf(args: list[str], _ctx: Context) -> Program:
    if not args:
        yield Write("stderr", b"printf: missing format\n")
        return 1
    values: Iterator[str] = iter(args[1:])

    def spec(match: re.Match[str]) -> str:
        if match.group(1) == "%":
            return "%"
        value = next(values, "")
        return str(int(value or 0)) if match.group(1) == "d" else value

    yield Write("stdout", re.sub(r"%([sd%])", spec, _unescape(args[0])).encode())
    return 0


def _cat(args: list[str], ctx: Context) -> Program:
    if not args or args == ["-"]:
        data = yield ReadInput()
        if data:
            yield Write("stdout", data)
        return 0
    status = 0
    for path in args:
        content = ctx.files.read(path)
        if content is None:
            yield Write("stderr", f"cat: can't open '{path}': No such file or directory\n".encode())
            status = 1
        elif content:
            yield Write("stdout", content)
    return status


def _constant(code: int) -> Callable[[list[str], Context], Program]:
    def program(_args: list[str], _ctx: Context) -> Program:
        return code
        yield  # a generator that yields nothing

    return program


def _exit(args: list[str], ctx: Context) -> Program:
    try:
        code = int(args[0]) & 0xFF if args else ctx.status
    except ValueError:
        yield Write("stderr", f"sh: exit: Illegal number: {args[0]}\n".encode())
        code = 2
    raise ShellExit(code)


def _sleep(args: list[str], _ctx: Context) -> Program:
    if args == ["infinity"]:
        yield Sleep(None)
        return 0
    try:
        seconds = sum(float(arg) for arg in args) if args else None
    except ValueError:
        seconds = None
    if seconds is None or seconds < 0:
        yield Write("stderr", b"sleep: invalid number\n")
        return 1
    if seconds:
        yield Sleep(seconds)
    return 0


def _env(_args: list[str], ctx: Context) -> Program:
    yield Write("stdout", "".join(f"{k}={v}\n" for k, v in sorted(ctx.env.items())).encode())
    return 0


def _hostname(_args: list[str], ctx: Context) -> Program:
    yield Write("stdout", f"{ctx.hostname}\n".encode())
    return 0


def _touch(args: list[str], ctx: Context) -> Program:
    for path in args:
        if ctx.files.read(path) is None:
            ctx.files.write(path, b"")
    return 0
    yield


def _rm(args: list[str], ctx: Context) -> Program:
    force = "-f" in args
    status = 0
    for path in (arg for arg in args if not arg.startswith("-")):
        if not ctx.files.remove(path) and not force:
            message = f"rm: can't remove '{path}': No such file or directory\n"
            yield Write("stderr", message.encode())
            status = 1
    return status


def _stty(args: list[str], ctx: Context) -> Program:
    if ctx.terminal is None:
        yield Write("stderr", b"stty: standard input: Not a tty\n")
        return 1
    if args == ["size"]:
        cols, rows = ctx.terminal
        yield Write("stdout", f"{rows} {cols}\n".encode())
    return 0


def _httpd(args: list[str], ctx: Context) -> Program:
    options = dict(itertools.pairwise(args))
    try:
        port = int(options.get("-p", "80").rsplit(":", 1)[-1])
    except ValueError:
        yield Write("stderr", b"httpd: bad port\n")
        return 1
    yield Listen(port, posixpath.join(ctx.files.cwd, options.get("-h", ".")))
    yield Sleep(None)
    return 0


BUILTINS: Mapping[str, Callable[[list[str], Context], Program]] = {
    "sh": _sh,
    "echo": _echo,
    "printf": _printf,
    "cat": _cat,
    "true": _constant(0),
    ":": _constant(0),
    "false": _constant(1),
    "mkdir": _constant(0),
    "sleep": _sleep,
    "env": _env,
    "hostname": _hostname,
    "touch": _touch,
    "rm": _rm,
    "stty": _stty,
    "httpd": _httpd,
}
