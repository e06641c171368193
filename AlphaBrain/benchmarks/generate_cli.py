"""`alphabrain-generate --stream NAME ...`: generate (or reuse) the expert demos of any built-in stream.

    alphabrain-generate --stream metaworld_cl5
    alphabrain-generate --stream libero_goal_mini --episodes-per-task 10

The stream picks the generator: a Meta-World stream runs `AlphaBrain.benchmarks.metaworld.generate`,
a LIBERO one `AlphaBrain.benchmarks.libero.generate`, with the rest of the command line as it is
(`alphabrain-generate --stream S --help` shows that generator's options).
"""

from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

from AlphaBrain.benchmarks.libero.tasks import GENERATED_SUITES
from AlphaBrain.benchmarks.metaworld.tasks import METAWORLD_STREAMS
from AlphaBrain.utils.cli import ArgumentParser
from AlphaBrain.utils.errors import did_you_mean


def _metaworld(argv: list[str]) -> int:
    from AlphaBrain.benchmarks.metaworld.generate import main

    return main(argv)


def _libero(argv: list[str]) -> int:
    from AlphaBrain.benchmarks.libero.generate import main

    return main(argv)


def generators() -> dict[str, Callable[[list[str]], int]]:
    """Stream name -> the generator's main."""
    table: dict[str, Callable[[list[str]], int]] = {name: _metaworld for name in METAWORLD_STREAMS}
    table.update({name: _libero for name in GENERATED_SUITES})
    return table


def _stream_of(argv: Sequence[str]) -> Optional[str]:
    for k, arg in enumerate(argv):
        if arg == "--stream" and k + 1 < len(argv):
            return argv[k + 1]
        if arg.startswith("--stream="):
            return arg.split("=", 1)[1]
    return None


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    table = generators()
    parser = ArgumentParser(
        prog="alphabrain-generate",
        description="Generate (or reuse) the scripted-expert demos of a built-in stream as a LeRobot dataset.",
        epilog="Streams: " + ", ".join(table) + ". With --stream, --help lists the options of that stream's generator.",
    )
    parser.add_argument("--stream", required=True, help="the stream: " + ", ".join(table))
    stream = _stream_of(argv)
    if stream is None:
        parser.parse_args(argv)  # --help, or the one-line "--stream is required"
        return 2
    if stream not in table:
        parser.error(f"unknown --stream {stream!r}.{did_you_mean(stream, table)} Streams: {', '.join(table)}")
    return table[stream](argv)


if __name__ == "__main__":
    sys.exit(main())
