"""The exchange registry: every ExchangeListener subclass in this package, by name.

Adding an exchange is adding one module here (plus its recording and tests): it is found by import, so no list
elsewhere needs editing.
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import ExchangeListener

_INFRASTRUCTURE = {"base", "tick", "book", "recording", "simulator", "venue", "faults", "__main__"}


def _discover() -> dict[str, type[ExchangeListener]]:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _INFRASTRUCTURE:
            importlib.import_module(f"{__name__}.{module.name}")
    found, pending = {}, list(ExchangeListener.__subclasses__())
    while pending:
        listener = pending.pop()
        pending.extend(listener.__subclasses__())
        if listener.name:
            found[listener.name] = listener
    return dict(sorted(found.items()))


EXCHANGES: dict[str, type[ExchangeListener]] = _discover()
