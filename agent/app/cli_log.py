"""``ocpp-agent log security``: the security event log of ``data_dir``, from a shell.

Reads (or, with ``--clear``, removes) the log files directly: that is safe while
the agent runs (it notices a cleared log before its next event). Events are shown
with their OCPP 2.0.1 names.

Exit status: 0 done, 2 bad input or configuration.
"""

import json
import sys

from agent.app.config import ConfigError, load_config
from agent.core.isotime import format_datetime, parse_datetime

# ``ocpp-agent run`` builds this module's parser too: the 2.0.1 words (agent.ocpp201,
# which a 1.6 charger never loads) and the security log are imported when a command runs.

EXIT_BAD_INPUT = 2


def _err(message: str) -> int:
    print("error: %s" % message, file=sys.stderr)
    return EXIT_BAD_INPUT


def format_event(event) -> str:
    from agent.ocpp201.security_words import event_type

    line = "%s  #%d  %s" % (format_datetime(event.at), event.seq, event_type(event.kind))
    return line + ("  " + event.tech_info if event.tech_info else "")


def event_json(event) -> str:
    from agent.ocpp201.security_words import event_type

    return json.dumps({"seq": event.seq, "time": format_datetime(event.at), "at": event.at, "kind": event.kind,
                       "type": event_type(event.kind), "tech_info": event.tech_info})


def cmd_log_security(args) -> int:
    try:
        config = load_config(args.config, check_data_dir=False)
    except ConfigError as e:
        return _err(str(e))
    start = None
    if args.since:
        try:
            start = parse_datetime(args.since)
        except ValueError as e:
            return _err("--since: %s" % e)
    from agent.security.context import SecurityContext
    from hal.runtime.clock import Clock

    security_log = SecurityContext(config.data_dir, Clock()).log
    if args.clear:
        before = security_log.events()
        event = security_log.clear()
        print("cleared the security log in %s: %d event(s) removed; recorded %s"
              % (security_log.directory, len(before), format_event(event)))
        return 0
    for event in security_log.events(start=start):
        print(event_json(event) if args.json else format_event(event))
    return 0


def add_log_command(sub) -> None:
    """``log security [--json] [--since ISO-TIME] [--clear]``."""
    lg = sub.add_parser("log", help="show the agent's logs")
    lsub = lg.add_subparsers(dest="log_cmd", required=True)
    s = lsub.add_parser("security", help="the security event log (oldest first)")
    s.add_argument("--config", required=True, help="configuration file (TOML)")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s.add_argument("--since", metavar="ISO-TIME", help="only events at or after this time (e.g. 2026-12-07T14:00:00Z)")
    s.add_argument("--clear", action="store_true",
                   help="remove every event (a SecurityLogWasCleared event is recorded)")
    s.set_defaults(func=cmd_log_security)
