"""Meter values: sampled during transactions, clock-aligned, and on request.

A part of ``Station`` (agent/core/station.py): its methods share the station's
state. Portable core: only the MicroPython asyncio subset (see STYLE.md).
"""

import logging

from agent.core.connector import Connector
from agent.core.metering import build_meter_sample, energy_wh_of
from agent.core.outbox import METER, OutboxEntry

log = logging.getLogger(__name__)

CHECKPOINT_S = 60  # the running transaction's meter reading is journaled at least this often


class Sampling:
    """Meter values"""

    def _on_setting_changed(self, name: str, value) -> None:
        if not self._running:
            return
        if name in ("sample_interval_s", "sample_end_interval_s"):
            for c in self.connectors:
                if c.transaction is not None:
                    self._restart_sampler(c)
        elif name in ("aligned_interval_s", "aligned_end_interval_s"):
            self._restart_aligned()

    def _restart_sampler(self, c: Connector) -> None:
        if self._running:
            self._spawn(self._sample_loop(c), key=("sampler", c.id))
        else:
            self._cancel(("sampler", c.id))

    async def _sample_loop(self, c: Connector) -> None:
        """Sampled meter values every sample_interval_s, and the values kept for the end every
        sample_end_interval_s (one reading when both are due); with the first interval 0, a
        journal checkpoint of the reading every CHECKPOINT_S."""
        interval = self.settings.get("sample_interval_s")
        end_interval = self.settings.get("sample_end_interval_s")
        periods = [interval if interval > 0 else CHECKPOINT_S] + ([end_interval] if end_interval > 0 else [])
        elapsed_s = 0  # since the loop began, in whole periods' steps: each wake is due for one of them
        while c.transaction is not None:
            due_s = min((elapsed_s // p + 1) * p for p in periods)
            await self.clock.sleep(due_s - elapsed_s)
            elapsed_s = due_s
            tx = c.transaction
            if tx is None or tx.stopped:
                return
            reading = await self._read_meter(c)
            now = self.clock.time()
            energy = energy_wh_of(reading)
            if energy is not None and energy >= tx.last_meter_wh:
                tx.last_meter_wh, tx.last_meter_time = int(round(energy)), now
            if end_interval > 0 and elapsed_s % end_interval == 0:
                stop_sample = build_meter_sample(reading, self.settings.get("sampled_end_measurands"), now,
                                                 "Sample.Periodic", c)
                if stop_sample.samples:
                    tx.stop_data.append(stop_sample)
            if interval > 0 and elapsed_s % interval == 0:
                sample = build_meter_sample(reading, self.settings.get("sampled_measurands"), now,
                                            "Sample.Periodic", c)
                if sample.samples:
                    self.outbox.append(OutboxEntry(METER, tx, c.id, [sample]))  # saves tx with it
                    continue
            self.outbox.save_transaction(tx)

    def _restart_aligned(self) -> None:
        if self._running and (self.settings.get("aligned_interval_s") > 0
                              or self.settings.get("aligned_end_interval_s") > 0):
            self._spawn(self._aligned_loop(), key="aligned")
        else:
            self._cancel("aligned")

    async def _aligned_loop(self) -> None:
        """Clock-aligned values (aligned_interval_s) and those kept for a transaction's end
        (aligned_end_interval_s), at the boundaries of either counted from midnight UTC."""
        interval = self.settings.get("aligned_interval_s")
        end_interval = self.settings.get("aligned_end_interval_s")
        periods = [p for p in (interval, end_interval) if p > 0]
        while True:
            now = self.clock.time()
            midnight = now - now % 86400
            next_at = min(midnight + ((now - midnight) // p + 1) * p for p in periods)
            await self.clock.sleep(next_at - now)
            since_midnight = round(next_at - midnight)
            send = interval > 0 and since_midnight % interval == 0
            keep = end_interval > 0 and since_midnight % end_interval == 0
            for c in self.connectors:
                await self._aligned_sample(c, next_at, send, keep)

    async def _aligned_sample(self, c: Connector, at: float, send: bool = True, keep: bool = True) -> None:
        """At a boundary: the values to ``send`` now, and those to ``keep`` for the end of a
        running transaction."""
        reading = await self._read_meter(c)
        tx = c.transaction
        if tx is not None and tx.start_deferred:
            tx = None  # its start is not reported yet: values outside a transaction
        if tx is not None and self.settings.get("aligned_send_during_idle"):
            send = False  # idle connectors only; the values kept for the transaction's end still are
        sample = build_meter_sample(reading, self.settings.get("aligned_measurands") if send else [], at,
                                    "Sample.Clock", c)
        if tx is not None and keep:
            stop_sample = build_meter_sample(reading, self.settings.get("aligned_end_measurands"), at, "Sample.Clock", c)
            if stop_sample.samples:
                tx.stop_data.append(stop_sample)
        if sample.samples:
            if tx is not None:
                self.outbox.append(OutboxEntry(METER, tx, c.id, [sample]))
            else:
                self.link.meter_values(c.id, sample)

    async def meter_sample_now(self, connector_id: int) -> tuple:
        """(transaction or None, MeterSample) for meter values the central system asked for."""
        c = self.connector(connector_id)
        reading = await self._read_meter(c)
        sample = build_meter_sample(reading, self.settings.get("sampled_measurands"), self.clock.time(),
                                    "Trigger", c)
        return c.transaction, sample
