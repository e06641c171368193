"""What every command line of the project shares: one-line usage errors, one exit path.

    parser = ArgumentParser(prog="python -m AlphaBrain.evaluation.cl_eval", description=...)
    parser.add_argument("--trials", type=int_arg(minimum=1), default=10)
    parser.add_argument("--out", type=output_file("metrics.json"))
    ...
    def main(argv=None) -> int:
        args = parser.parse_args(argv)
        return run_main(_main, args)

A usage error (a bad flag or value) is one line on stderr and exit status 2:

    error: run_cl_eval.sh: --trials must be an integer >= 1, got 'abc' (see run_cl_eval.sh --help)

naming the command as the user typed it: `python -m <module>` for a module, the script
path for a script, the command name for a console script (`alphabrain-eval`), and the
wrapper for a shell wrapper, which says so with `ALPHABRAIN_PROG=<its name>` in the
environment of the Python it starts. Errors the user caused later on (`UserError`) are
`error: <message>` on one line, status 2, through `run_main`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional

from AlphaBrain.utils.errors import UserError

PROG_ENV = "ALPHABRAIN_PROG"
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_OWN = "\x1e"  # marks messages of this module's `type=` helpers, which read as "<flag> <message>"
_wrapper_prog: Optional[str] = None


def command_name(default: Optional[str] = None) -> str:
    """The command the user typed to start this process (see the module docstring)."""
    global _wrapper_prog
    if _wrapper_prog is None:
        # Read once and removed, so processes this one starts (workers, servers) name themselves.
        _wrapper_prog = os.environ.pop(PROG_ENV, "")
    if _wrapper_prog:
        return _wrapper_prog
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if spec is not None and spec.name:
        name = spec.name.removesuffix(".__main__")
        if name.split(".")[0] == "AlphaBrain":
            return f"python -m {name}"
        return default or name  # another tool (a test runner) calling main()
    base = os.path.basename(argv0)
    if base.startswith("alphabrain-"):
        return base  # a console script of pyproject.toml
    if argv0.endswith(".py") and main is not None and getattr(main, "__file__", None):
        return argv0  # a script, as typed
    return default or base or "alphabrain"


def _tidy(message: str) -> str:
    """argparse's wording, shortened to read well after '<prog>: '."""
    match = re.match(r"argument ([^:]+): (.*)$", message, re.DOTALL)
    if not match:
        return " ".join(message.split())
    flag, rest = match.groups()
    flag = flag.split("/")[-1]  # "-t/--trials" -> "--trials"
    if rest.startswith(_OWN):  # checked first: str.split() counts the marker as whitespace
        return " ".join(f"{flag} {rest[len(_OWN):]}".split())
    rest = " ".join(rest.split())
    kind = re.match(r"invalid (int|float) value: (.*)$", rest)
    if kind:
        return f"{flag} must be {'an integer' if kind.group(1) == 'int' else 'a number'}, got {kind.group(2)}"
    return f"{flag}: {rest}"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line usage errors naming the command as typed (exit status 2)."""

    def __init__(self, *args: Any, prog: Optional[str] = None, **kwargs: Any):
        super().__init__(*args, prog=command_name(prog), **kwargs)

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {self.prog}: {_tidy(message)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


# ------------------------------------------------------------------------------------ type= helpers

def int_arg(minimum: Optional[int] = None, maximum: Optional[int] = None) -> Callable[[str], int]:
    """`type=` for an integer flag with an optional range: `--trials abc` says what is allowed."""
    if minimum is not None and maximum is not None:
        allowed = f"an integer in {minimum}..{maximum}"
    elif minimum is not None:
        allowed = f"an integer >= {minimum}"
    elif maximum is not None:
        allowed = f"an integer <= {maximum}"
    else:
        allowed = "an integer"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except (TypeError, ValueError):
            value = None
        if value is None or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{_OWN}must be {allowed}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


def float_arg(minimum: Optional[float] = None, maximum: Optional[float] = None) -> Callable[[str], float]:
    """`type=` for a finite number with an optional closed range."""
    lo = "" if minimum is None else f" >= {minimum:g}"
    hi = "" if maximum is None else f" <= {maximum:g}"
    allowed = f"a number{lo}{' and' if lo and hi else ''}{hi}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            value = float("nan")
        if value != value or value in (float("inf"), float("-inf")) or (minimum is not None and value < minimum) \
                or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"{_OWN}must be {allowed}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def shard_arg() -> Callable[[str], tuple[int, int]]:
    """`type=` for `K/N`, shard K (0-based) of N, as in `$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`."""

    def parse(text: str) -> tuple[int, int]:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
        k, n = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
        if not match or n < 1 or k >= n:
            raise argparse.ArgumentTypeError(
                f"{_OWN}must be K/N with N >= 1 and K in 0..N-1 (shard K of N, e.g. 0/4), got {text!r}")
        return k, n

    parse.__name__ = "shard"
    return parse


def output_file(example: str) -> Callable[[str], Path]:
    """`type=` for a file the command writes: an existing directory (or a file where a folder
    of the path should be) is refused before any work starts."""

    def parse(text: str) -> Path:
        path = Path(text).expanduser()
        if path.is_dir():
            raise argparse.ArgumentTypeError(
                f"{_OWN}{text} is a directory; give a file path such as {Path(text) / example}"
            )
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if parent.exists() and not parent.is_dir():
            raise argparse.ArgumentTypeError(f"{_OWN}{text}: {parent} is a file, not a directory")
        return path

    parse.__name__ = "file path"
    return parse


# ------------------------------------------------------------------------------------ one exit path

def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def run_main(fn: Callable[..., Optional[int]], *args: Any,
             interrupted: str = "interrupted", **kwargs: Any) -> int:
    """Call `fn` and return the exit status: its own if it returns an int, else 0. A `UserError`
    is `error: <message>` on one line (status 2), Ctrl-C prints `interrupted` (status 130), a
    closed stdout pipe (`| head`) ends quietly (status 1)."""
    try:
        code = fn(*args, **kwargs)
    except UserError as exc:
        sys.stdout.flush()
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code if isinstance(code, int) and not isinstance(code, bool) else 0
