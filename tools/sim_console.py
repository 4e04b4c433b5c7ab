"""A line console on stdin for the EVSE simulators' command lines (HIL benches).

Each line is ``command [args…]``; ``commands`` maps a command to a callable
taking the argument strings and returning something to print (or None).
``help`` lists the commands, ``quit`` (or end of input) ends the console.
CPython only.
"""

import asyncio
import sys


async def run_console(commands: dict, prompt: str = "> ") -> None:
    """Serve commands from stdin until ``quit`` or end of input."""
    loop = asyncio.get_running_loop()
    lines = []
    ready = asyncio.Event()
    eof = []

    def on_stdin() -> None:
        line = sys.stdin.readline()
        if not line:
            eof.append(True)
        else:
            lines.append(line)
        ready.set()

    fd = sys.stdin.fileno()
    loop.add_reader(fd, on_stdin)
    try:
        print(prompt, end="", flush=True)
        while True:
            while not lines and not eof:
                ready.clear()
                await ready.wait()
            if not lines:
                return
            words = lines.pop(0).split()
            if words:
                name, args = words[0].lower(), words[1:]
                if name in ("quit", "exit"):
                    return
                if name == "help":
                    print("commands: %s, help, quit" % ", ".join(sorted(commands)))
                elif name not in commands:
                    print("unknown command %r (help lists them)" % name)
                else:
                    try:
                        out = commands[name](*args)
                    except (TypeError, ValueError) as e:
                        out = "error: %s" % e
                    if out is not None:
                        print(out)
            print(prompt, end="", flush=True)
    finally:
        loop.remove_reader(fd)
