"""Ctrl-C and SIGTERM for the whole of a search: while trials run, during the shutdown and after the last trial.

A search is stopped by a signal at any point: while trials train, but also just after the last one, while
the storage is saved, the plots and W&B runs are written, or Ray shuts down. :class:`Interrupts` handles
SIGINT and SIGTERM for the whole of :func:`nas.search.driver.run_search`:

* the first signal sets :attr:`Interrupts.stop`: nothing more is launched, running trials are stopped (they
  re-run on resume), and everything else (records, storage, ``pareto.json``, plots, Ray's shutdown) is
  finished as usual; the search then returns ``interrupted``;
* a second signal aborts at once (``KeyboardInterrupt``), except inside :meth:`Interrupts.shielded`
  sections, which it cannot cut short: Ray's shutdown, so that no Ray process (raylet, dashboard and
  runtime-env agents) is left running after the driver is gone. The abort then happens right after.

``ray.init`` installs a SIGTERM handler of its own (which exits without running the driver's ``finally``
blocks): :meth:`Interrupts.install` is called again once Ray is up.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupts:
    """SIGINT/SIGTERM handling for one search (a no-op off the main thread, where Python delivers no signals)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.received: list[str] = []  # names of the signals received, in order
        self._shield = 0
        self._deferred = False
        self._previous: dict[int, Any] = {}
        self._main = threading.current_thread() is threading.main_thread()

    def install(self) -> None:
        """(Re)install the handler; the handlers found the first time are restored by :meth:`restore`."""
        if not self._main:
            return
        for s in _SIGNALS:
            old = signal.signal(s, self._handle)
            self._previous.setdefault(s, old)

    def restore(self) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        self.received.append(signal.Signals(signum).name)
        if not self.stop.is_set():
            self.stop.set()
            return
        if self._shield:
            self._deferred = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """A section a second signal cannot cut short; an abort it asked for happens right after."""
        self._shield += 1
        try:
            yield
        finally:
            self._shield -= 1
        if self._deferred and not self._shield:
            self._deferred = False
            raise KeyboardInterrupt

    @property
    def interrupted(self) -> bool:
        return self.stop.is_set()


@contextlib.contextmanager
def interrupts() -> Iterator[Interrupts]:
    """:class:`Interrupts` installed for the block, the previous handlers restored after it."""
    guard = Interrupts()
    guard.install()
    try:
        yield guard
    finally:
        guard.restore()
