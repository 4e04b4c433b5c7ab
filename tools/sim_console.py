"""A line console on stdin for the simulators' command lines (HIL benches).

Each line is ``command [args…]``; ``commands`` maps a command to a callable
taking the argument strings and returning something to print (None: ``ok``),
so that every command line gets exactly one line of answer.
``help`` lists the commands, ``quit`` (or end of input) ends the console.

A simulator started as a background service has no console: when stdin
cannot be watched (``/dev/null``, a regular file) the console says so on
stderr and waits until the process is interrupted (Ctrl-C, SIGTERM).
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

    try:
        fd = sys.stdin.fileno()
        loop.add_reader(fd, on_stdin)
    except (OSError, ValueError) as e:  # epoll refuses regular files and /dev/null (EPERM)
        print("no console (stdin cannot be watched: %s): running until interrupted" % e, file=sys.stderr,
              flush=True)
        await asyncio.Event().wait()
        return
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
                    print("ok" if out is None else out)  # every command answers: benches script it
            print(prompt, end="", flush=True)
    finally:
        loop.remove_reader(fd)
