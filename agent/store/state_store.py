"""Persistent station state (availability, counters) in ``data_dir/station.json``."""

import os

from hal.runtime.storage import read_json, write_json_atomic


class StationStateStore:
    def __init__(self, data_dir: str) -> None:
        self.path = os.path.join(data_dir, "station.json")

    def load(self) -> dict:
        return read_json(self.path, {})

    def save(self, state: dict) -> None:
        write_json_atomic(self.path, state)
