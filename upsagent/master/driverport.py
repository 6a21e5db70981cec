# -*- test-case-name: tests.test_server -*-
"""The master's side of the protocol core's driver seam, and the core's other inputs.

The core (:mod:`upsagent.nut`) does no I/O: a SET VAR or INSTCMD leaves it as a
:class:`~upsagent.nut.state.DriverRequest` handed to the slot's port.  :class:`DriverAdapter`
is that port for one of our drivers: it calls the driver, and when the driver's Deferred
fires it records the answer for ``GET TRACKING`` (a failure is logged and recorded as
``ERR FAILED``).  This module also supplies what the core must not fetch itself: the
tracking-id factory (upsd's ids are upper-case UUID v4s) and the bundled ``GET DESC``
table (NUT 2.8.0's ``cmdvartab``, package data of :mod:`upsagent.nut`).
"""

from __future__ import annotations

import importlib.resources
import uuid

from twisted.logger import Logger
from twisted.python.failure import Failure

from upsagent.drivers.base import Driver, Result
from upsagent.nut.state import Descriptions, DriverRequest, Tracking

__all__ = ["DriverAdapter", "bundled_descriptions", "new_tracking_id"]

_log = Logger()


def new_tracking_id() -> str:
    """A fresh tracking id, as upsd makes them."""
    return str(uuid.uuid4()).upper()


def bundled_descriptions() -> Descriptions:
    """The ``GET DESC`` / ``GET CMDDESC`` table shipped with upsagent."""
    text = importlib.resources.files("upsagent.nut").joinpath("cmdvartab").read_text(
        encoding="utf-8")
    return Descriptions(text)


class DriverAdapter:
    """Carries the core's requests for one UPS out on its driver."""

    def __init__(self, driver: Driver, tracking: Tracking) -> None:
        self.driver = driver
        self.tracking = tracking

    def submit(self, request: DriverRequest) -> None:
        """Start ``request`` on the driver; an exception from the driver refuses it."""
        ident = request.tracking
        deferred = self.driver.request(request.kind, request.name, request.value, ident)

        def done(outcome: Result) -> None:
            if ident is not None:
                self.tracking.finish(ident, outcome.value)

        def failed(reason: Failure) -> None:
            _log.failure("UPS {ups}: driver request {kind} {name} failed", reason,
                         ups=request.ups, kind=request.kind, name=request.name)
            if ident is not None:
                self.tracking.finish(ident, "ERR FAILED")

        deferred.addCallbacks(done, failed)
