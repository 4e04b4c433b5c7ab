"""Plumbing shared by the simulators in ``tools/`` (HIL benches): their command
lines, and starting and stopping their serial side.

A simulator's command line builds its parser with :func:`new_parser` (plus
:func:`add_transports` for the ``--pty`` / ``--serial`` / ``--tcp-port``
choice), parses with :func:`parse` (which adds ``-v``), and hands its
``_main`` to :func:`run`, which sets up logging and runs it until Ctrl-C.
``_main`` starts the simulator, prints where it serves, then waits with
:func:`until_stopped` (or :func:`serve_console` for the EVSE simulators),
which stops the simulator on the way out, whatever ended the wait.

A simulator serves a pty with :func:`start_on_pty` and, in its ``stop()``,
ends its tasks with :func:`cancel_all` and closes its port and link with
:func:`close_each`; :class:`StopOnExit` makes it an async context manager.
CPython only.
"""

import argparse
import asyncio
import logging
import signal

_TRANSPORT_HELP = {
    "pty": ("--pty", "on a pseudo-terminal pair"),
    "serial": ("--serial", "on a serial port"),
    "tcp": ("--tcp-port", "on this port (0: any free port)"),
}


def new_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """A parser for ``python -m <module>``, described by the first paragraph of ``doc``."""
    return argparse.ArgumentParser(prog="python -m " + module, description=doc.split("\n\n")[0])


def add_transports(p: argparse.ArgumentParser, **what: str) -> None:
    """The required choice of where to serve, in the order given: ``pty``, ``serial`` and/or ``tcp``,
    each naming what is served there (help: "serve <what> on a pseudo-terminal pair")."""
    group = p.add_mutually_exclusive_group(required=True)
    for kind, served in what.items():
        flag, where = _TRANSPORT_HELP[kind]
        text = " ".join(w for w in ("serve", served, where) if w)
        if kind == "pty":
            group.add_argument(flag, action="store_true", help=text)
        elif kind == "serial":
            group.add_argument(flag, metavar="PORT", help=text)
        else:
            group.add_argument(flag, type=int, help=text)


def parse(p: argparse.ArgumentParser, argv):
    """Add ``-v/--verbose`` (last) and parse ``argv``."""
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


async def _stop_on_sigterm(main) -> None:
    """Run ``main``; SIGTERM cancels it, like Ctrl-C. The loop's own signal handling (a wakeup
    fd) is needed: a plain ``signal.signal`` handler only runs once the main thread wakes up,
    and the kernel may hand the signal to an idle executor thread instead."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    await main


def run(argv, parse_args, amain, verbose_level: int = logging.INFO) -> int:
    """Parse ``argv``, log at ``verbose_level`` with ``-v`` (else warnings only) and run
    ``amain(args)`` until it returns, Ctrl-C or SIGTERM."""
    args = parse_args(argv)
    logging.basicConfig(level=verbose_level if args.verbose else logging.WARNING)
    try:
        asyncio.run(_stop_on_sigterm(amain(args)))  # a service manager stops it like Ctrl-C: cleanly
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    return 0


async def until_stopped(sim, waiting) -> None:
    """Await ``waiting`` (a console, or a loop that runs until Ctrl-C), then stop ``sim``."""
    try:
        await waiting
    finally:
        await sim.stop()


def _on(value: str) -> bool:
    return value.lower() in ("on", "1", "true", "yes")


def console_commands(sim) -> dict:
    """Console commands shared by the EVSE simulators' command lines."""
    def silent(on="on"):
        sim.silent = _on(on)

    def full(on="on"):
        sim.ev_full(_on(on))

    return {"plug": sim.plug, "unplug": sim.unplug, "full": full, "fault": sim.fault, "clear": sim.clear,
            "silent": silent, "reboot": sim.reboot, "status": sim.status}


async def serve_console(sim) -> None:
    """Drive an EVSE simulator from the stdin console (``help``, ``quit``) until the end, then stop it."""
    from tools.sim_console import run_console

    await until_stopped(sim, run_console(console_commands(sim)))


# -- lifetime -----------------------------------------------------------------------------

class StopOnExit:
    """``async with sim:`` for a simulator with ``async stop()``: stopped at the end of the block."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


async def start_on_pty(start, **link_options):
    """Open a ``tools.pty_link.PtyLink`` (``link_options``: its arguments) and ``await start(path)``
    on its device end (``link.b_path``); returns the link, or closes it again if ``start`` fails."""
    from tools.pty_link import PtyLink

    link = PtyLink(**link_options)
    await link.open()
    try:
        await start(link.b_path)
    except BaseException:
        await link.close()
        raise
    return link


async def cancel_all(tasks) -> None:
    """Cancel ``tasks`` and wait for each to end, whatever it ends with."""
    for t in tasks:
        t.cancel()
    for t in tasks:
        try:
            await t
        except (asyncio.CancelledError, Exception):
            pass


async def close_each(*closables) -> None:
    """``await x.close()`` for each of ``closables`` that is not None, in order."""
    for x in closables:
        if x is not None:
            await x.close()
