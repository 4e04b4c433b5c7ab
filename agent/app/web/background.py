"""What the page does while nobody looks at it: record sessions (agent/app/web/recorder.py)
and keep the agent log's last lines. Started with the page; imports nothing a request
alone needs (no h11, no html), so a page nobody opens stays cheap."""

import asyncio
import collections
import logging

from agent.app.web.recorder import SessionRecorder

LOG_BUFFER_LINES = 500


class LogBuffer(logging.Handler):
    """The last ``LOG_BUFFER_LINES`` lines of the agent's log, for the logs view
    when the agent writes no log file."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        from agent.app.log_files import agent_log_formatter

        self.setFormatter(agent_log_formatter())
        self.lines = collections.deque(maxlen=LOG_BUFFER_LINES)

    def emit(self, record) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a log line must never break the agent
            return


class Background:
    """The session recorder's task and the log buffer of one page."""

    def __init__(self, agent, read) -> None:
        self.recorder = SessionRecorder(agent.station, agent.clock, agent.config.data_dir, read)
        self.logs = LogBuffer()
        self._task = None

    def start(self) -> None:
        logging.getLogger().addHandler(self.logs)
        self._task = asyncio.create_task(self.recorder.run())

    async def close(self) -> None:
        logging.getLogger().removeHandler(self.logs)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self.recorder.save_running()  # a session still running: its points for the next start
