"""A small MCP server for agentflow's `mcp` tools, written with the official Python SDK (`mcp`).

It serves over streamable HTTP (default) or stdio (`--stdio`):

    pip install 'mcp==2.3.0'
    python3 examples/mcp/server.py --port 8765          # http://127.0.0.1:8765/mcp
    python3 examples/mcp/server.py --stdio

and in agentflow.toml:

    [mcp_servers.notes]
    url = "http://127.0.0.1:8765/mcp"

Its tools: `word_count` (structured result, idempotent), `shout` (text only), `fail` (always an
error result: `isError`), `slow` (waits `seconds`; a cancel from the client stops it).
With `--record FILE`, `slow` appends what it saw to FILE, a line each: `started TAG`,
`finished TAG` or `cancelled TAG`.
"""

import argparse
import sys
from typing import TypedDict

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

server = MCPServer("notes")
record_to: str | None = None


def record(what: str, tag: str) -> None:
    if record_to:
        with open(record_to, "a", encoding="utf-8") as f:
            f.write(f"{what} {tag}\n")


class WordCount(TypedDict):
    words: int


@server.tool(annotations=ToolAnnotations(idempotentHint=True, readOnlyHint=True))
def word_count(text: str) -> WordCount:
    """Count the words in a text (a structured result)."""
    return {"words": len(text.split())}


@server.tool(structured_output=False)
def shout(text: str) -> str:
    """Return the text in capitals."""
    return text.upper()


@server.tool()
def fail(message: str) -> str:
    """Always fails with the given message (an `isError` result the model reads)."""
    raise ToolError(message)


@server.tool()
async def slow(seconds: float, tag: str = "") -> str:
    """Wait `seconds`, then answer; a cancelled call stops at once."""
    record("started", tag)
    print(f"slow {tag} started", file=sys.stderr, flush=True)
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        record("cancelled", tag)
        raise
    record("finished", tag)
    return f"waited {seconds} s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stdio", action="store_true")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--record", help="append what `slow` saw to this file")
    args = parser.parse_args()
    global record_to
    record_to = args.record
    if args.stdio:
        server.run("stdio")
    else:
        server.run("streamable-http", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
