"""Stop signals for the `quantbot` command: Ctrl-C, SIGTERM and SIGHUP stop the whole command.

No Dagster import here (every command installs these).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """The command was stopped by a signal; exit with 128 + its number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class SignalWatch:
    """Stop signals, noticed even while Dagster's own handlers are installed.

    Dagster replaces the SIGINT and SIGTERM handlers while it executes a run
    (it turns them into a failed run and returns), so a signal received then
    is read back from a wakeup fd after the run. Around a run (while Dagster
    creates or finishes it, outside its own handling) the signal is deferred:
    raising there could leave the run half-recorded, so it is only noted, and
    handed to Dagster's interrupt flag so the run stops at its next
    checkpoint. Outside runs, SIGTERM and SIGHUP raise `Interrupted` (SIGINT
    raises KeyboardInterrupt as usual).
    """

    def __init__(self) -> None:
        self._read = -1
        self._old_fd = -1
        self._old: dict[int, Any] = {}
        self.in_run = False
        self.seen: int | None = None

    def _raise(self, signum: int, _frame: Any) -> None:
        if self.in_run:
            self._defer(signum, _frame)
            return
        raise Interrupted(signum)

    def _defer(self, signum: int, _frame: Any) -> None:
        """In a run: note the signal (the wakeup fd has it) and tell Dagster to stop."""
        if signal.getsignal(signal.SIGINT) not in (self._defer, signal.default_int_handler):
            # Dagster's handler is installed (SIGHUP is not one of its signals): forward.
            signal.raise_signal(signal.SIGINT)
            return
        try:  # not yet in Dagster's handling: its first checkpoint raises the interrupt
            from dagster._utils.interrupts import _received_interrupt

            _received_interrupt["received"] = True
        except (ImportError, AttributeError, TypeError):
            pass

    def install(self) -> None:
        """(Re)install the handlers: Dagster leaves SIGTERM on the SIGINT handler after a run."""
        signal.signal(signal.SIGTERM, self._raise)
        signal.signal(signal.SIGHUP, self._raise)

    def __enter__(self) -> SignalWatch:
        if self._read < 0:
            self._read, write = os.pipe()
            os.set_blocking(self._read, False)
            os.set_blocking(write, False)
            self._write = write
            self._old_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
            for signum in (signal.SIGTERM, signal.SIGHUP):
                self._old[signum] = signal.getsignal(signum)
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._old_fd)
        for fd in (self._read, self._write):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._read = -1

    def take(self) -> int | None:
        """The first stop signal received since the last call (None if none)."""
        if self._read >= 0:
            with contextlib.suppress(BlockingIOError, OSError):
                while data := os.read(self._read, 512):
                    for signum in data:
                        if signum in STOP_SIGNALS and self.seen is None:
                            self.seen = signum
        seen, self.seen = self.seen, None
        return seen

    @contextlib.contextmanager
    def run(self) -> Iterator[None]:
        self.take()
        self.in_run = True
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._defer)
        try:
            yield
        finally:
            self.in_run = False
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.install()


_WATCH: SignalWatch | None = None


def current_watch() -> SignalWatch | None:
    return _WATCH


@contextlib.contextmanager
def stop_signals() -> Iterator[SignalWatch]:
    """For the duration of a command: SIGTERM/SIGHUP stop it (see SignalWatch)."""
    global _WATCH
    if _WATCH is not None:  # nested (quickstart runs several commands)
        yield _WATCH
        return
    with SignalWatch() as watch:
        _WATCH = watch
        try:
            yield watch
        except KeyboardInterrupt:
            # SIGTERM/SIGHUP forwarded as SIGINT at a moment Dagster was not listening.
            signum = watch.take()
            if signum is not None and signum != signal.SIGINT:
                raise Interrupted(signum) from None
            raise
        finally:
            _WATCH = None
