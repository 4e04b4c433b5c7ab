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
        if name == "sample_interval_s":
            for c in self.connectors:
                if c.transaction is not None:
                    self._restart_sampler(c)
        elif name == "aligned_interval_s":
            self._restart_aligned()

    def _restart_sampler(self, c: Connector) -> None:
        if self._running:
            self._spawn(self._sample_loop(c), key=("sampler", c.id))
        else:
            self._cancel(("sampler", c.id))

    async def _sample_loop(self, c: Connector) -> None:
        """Sampled meter values every sample_interval_s; with the interval 0,
        only a journal checkpoint of the reading every CHECKPOINT_S."""
        interval = self.settings.get("sample_interval_s")
        while c.transaction is not None:
            await self.clock.sleep(interval if interval > 0 else CHECKPOINT_S)
            tx = c.transaction
            if tx is None or tx.stopped:
                return
            reading = await self._read_meter(c)
            now = self.clock.time()
            energy = energy_wh_of(reading)
            if energy is not None and energy >= tx.last_meter_wh:
                tx.last_meter_wh, tx.last_meter_time = int(round(energy)), now
            if interval > 0:
                stop_sample = build_meter_sample(reading, self.settings.get("sampled_end_measurands"), now,
                                                 "Sample.Periodic", c)
                if stop_sample.samples:
                    tx.stop_data.append(stop_sample)
                sample = build_meter_sample(reading, self.settings.get("sampled_measurands"), now,
                                            "Sample.Periodic", c)
                if sample.samples:
                    self.outbox.append(OutboxEntry(METER, tx, c.id, [sample]))  # saves tx with it
                    continue
            self.outbox.save_transaction(tx)

    def _restart_aligned(self) -> None:
        if self._running and self.settings.get("aligned_interval_s") > 0:
            self._spawn(self._aligned_loop(), key="aligned")
        else:
            self._cancel("aligned")

    async def _aligned_loop(self) -> None:
        interval = self.settings.get("aligned_interval_s")
        while True:
            now = self.clock.time()
            midnight = now - now % 86400
            next_at = midnight + ((now - midnight) // interval + 1) * interval
            await self.clock.sleep(next_at - now)
            for c in self.connectors:
                await self._aligned_sample(c, next_at)

    async def _aligned_sample(self, c: Connector, at: float) -> None:
        reading = await self._read_meter(c)
        tx = c.transaction
        sample = build_meter_sample(reading, self.settings.get("aligned_measurands"), at, "Sample.Clock", c)
        if tx is not None:
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
