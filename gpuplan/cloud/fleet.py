"""Run one launch per instance type in parallel, report progress to a listener, and terminate every instance
whatever happens.

Guarantees, in order of defence:
1. each launch thread terminates its own instance in a `finally` (success, timeout, any error);
2. the main thread, on Ctrl-C, SIGTERM or SIGHUP, terminates every instance started so far, with further Ctrl-Cs
   held off until that is done, then waits for the threads (an instance whose launch call was still in flight is
   terminated by its thread as soon as its id is known);
3. the instance's own watchdog (`shutdown -h +N` in the bootstrap) if this process is killed outright.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gpuplan.cloud.aws import Clients, translate
from gpuplan.cloud.launchplan import LaunchPlan, TargetPlan
from gpuplan.cloud.settings import TERMINATE_RETRY_SECONDS, LaunchSettings
from gpuplan.cloud.start import start_instance
from gpuplan.cloud.uploads import Prepared
from gpuplan.cloud.wait import Cancelled, wait_for_result
from gpuplan.errors import GpuplanError, one_line
from gpuplan.measurement import CalibrationResult

JOIN_SECONDS = 120.0


class Outcome(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    target: TargetPlan
    instance_id: str | None = None
    result: CalibrationResult | None = None
    error: GpuplanError | None = None
    terminated: bool = False
    # Set by the thread once its instance is terminated. The main thread waits on these and never on
    # Thread.join: in Python 3.11 a Ctrl-C that lands inside join() can mark a live thread as finished.
    done: threading.Event = Field(default_factory=threading.Event, exclude=True)


@dataclass(frozen=True)
class InstanceStatus:
    """Where one launch stands: its instance's state, the time since launch and what it cost so far."""

    instance_type: str
    instance_id: str
    state: str
    elapsed_seconds: float
    usd_so_far: float | None


class Listener:
    """What `launch_all` tells its caller; the CLI renders it. `status` comes from the launch threads, `tick` (a
    moment to redraw) and `message` (warnings, what happens on Ctrl-C) mostly from the main thread."""

    def status(self, status: InstanceStatus) -> None:
        pass

    def tick(self) -> None:
        pass

    def message(self, text: str) -> None:
        pass


class Tracker:
    """Every instance id started by this process, so that any thread can terminate all of them."""

    def __init__(self, clients: Clients, cancel: threading.Event, listener: Listener,
                 retry_seconds: float = TERMINATE_RETRY_SECONDS):
        self.clients, self.cancel, self.listener, self.retry_seconds = clients, cancel, listener, retry_seconds
        self.lock = threading.Lock()
        self.live: dict[str, str] = {}
        self.failed: dict[str, str] = {}

    def add(self, instance_id: str, instance_type: str) -> None:
        with self.lock:
            self.live[instance_id] = instance_type
        if self.cancel.is_set():  # Ctrl-C arrived while run_instances was in flight
            self.terminate(instance_id)

    def terminate(self, instance_id: str) -> bool:
        for attempt in range(3):
            try:
                self.clients.ec2.terminate_instances(InstanceIds=[instance_id])
                with self.lock:
                    self.live.pop(instance_id, None)
                    self.failed.pop(instance_id, None)
                return True
            except Exception as e:
                if "InvalidInstanceID.NotFound" in str(e):
                    with self.lock:
                        self.live.pop(instance_id, None)
                    return True
                mapped = translate(e, f"terminate {instance_id}")
                reason = str(mapped) if mapped else one_line(e)
                time.sleep(self.retry_seconds * (attempt + 1))
        with self.lock:
            self.failed[instance_id] = reason
        self.listener.message(f"WARNING: could not terminate {instance_id}: {reason}. Terminate it with `gpuplan "
                              f"instances terminate {instance_id}` (its watchdog powers it off in any case).")
        return False

    def terminate_all(self) -> list[str]:
        with self.lock:
            ids = list(self.live)
        return [i for i in ids if self.terminate(i)]


def _status(target: TargetPlan, instance_id: str, state: str, elapsed: float) -> InstanceStatus:
    cost = None if target.usd_per_hour is None else target.usd_per_hour * elapsed / 3600
    return InstanceStatus(target.instance_type, instance_id, state, elapsed, cost)


def _run_one(plan: LaunchPlan, prepared: Prepared, outcome: Outcome, clients: Clients, tracker: Tracker,
             listener: Listener, settings: LaunchSettings) -> None:
    target = outcome.target
    started = time.monotonic()
    try:
        outcome.instance_id = start_instance(plan, prepared, target, clients, retry_seconds=settings.profile_retry_seconds,
                                             retries=settings.profile_retries)
        started = time.monotonic()
        tracker.add(outcome.instance_id, target.instance_type)
        listener.status(_status(target, outcome.instance_id, "pending", 0.0))
        outcome.result = wait_for_result(
            plan, target, outcome.instance_id, clients, cancel=tracker.cancel, poll_seconds=settings.poll_seconds,
            report=lambda state, elapsed: listener.status(_status(target, outcome.instance_id or "", state, elapsed)),
        )
    except Cancelled:
        outcome.error = GpuplanError("interrupted")
    except GpuplanError as e:
        outcome.error = e
    except Exception as e:  # a bug must not leave an instance running; it still surfaces as an error
        outcome.error = GpuplanError(f"{target.instance_type}: unexpected {type(e).__name__}: {one_line(e)} "
                                     "(set GPUPLAN_DEBUG=1 for details)")
        outcome.error.__cause__ = e
    finally:
        if outcome.instance_id:
            outcome.terminated = tracker.terminate(outcome.instance_id)
            # The final state, with the time since launch (what was billed, give or take the shutdown).
            listener.status(_status(target, outcome.instance_id, "terminated" if outcome.terminated else
                                    "NOT TERMINATED", time.monotonic() - started))
        outcome.done.set()


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP (a closed terminal) end the wait like Ctrl-C does, so the same cleanup runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt()

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def _shielded(listener: Listener) -> Iterator[list[int]]:
    """Hold further Ctrl-Cs (and SIGTERMs) off while terminating: a second Ctrl-C must not abandon the cleanup."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def hold(signum: int, frame: Any) -> None:
        received.append(signum)
        listener.message("Still terminating the instances; gpuplan exits as soon as that is done.")

    previous = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _terminate_everything(cancel: threading.Event, tracker: Tracker, outcomes: list[Outcome]) -> list[str]:
    tracker.listener.message("Interrupted: terminating the instances...")
    with _shielded(tracker.listener):
        # First terminate what is known, from here, before telling the threads: that path depends on nothing else.
        tracker.terminate_all()
        cancel.set()
        deadline = time.monotonic() + JOIN_SECONDS
        for o in outcomes:
            o.done.wait(timeout=max(deadline - time.monotonic(), 0.0))
        tracker.terminate_all()
    return sorted({o.instance_id for o in outcomes if o.instance_id} - set(tracker.failed))


def launch_all(plan: LaunchPlan, prepared: Prepared, clients: Clients, *, listener: Listener | None = None,
               settings: LaunchSettings = LaunchSettings(), tick_seconds: float = 0.2) -> list[Outcome]:
    """Launch every target in its own thread and wait for all; on Ctrl-C terminate everything, then raise."""
    listener = listener or Listener()
    cancel = threading.Event()
    tracker = Tracker(clients, cancel, listener, settings.terminate_retry_seconds)
    outcomes = [Outcome(target=t) for t in plan.targets]
    threads = [
        threading.Thread(target=_run_one, args=(plan, prepared, o, clients, tracker, listener, settings),
                         name=f"gpuplan-launch-{o.target.instance_type}", daemon=True)
        for o in outcomes
    ]
    try:
        with _signals_interrupt():
            for t in threads:
                t.start()
            while not all(o.done.is_set() for o in outcomes):
                time.sleep(tick_seconds)
                listener.tick()
    except KeyboardInterrupt:
        ended = _terminate_everything(cancel, tracker, outcomes)
        left = sorted(tracker.failed)
        raise GpuplanError(
            f"interrupted; terminated {', '.join(ended) or 'nothing (no instance had started)'}"
            + (f"; could NOT terminate {', '.join(left)}: run `gpuplan instances terminate --all`" if left else ""),
            exit_code=130,
        ) from None
    except BaseException:
        _terminate_everything(cancel, tracker, outcomes)
        raise
    listener.tick()
    if tracker.failed:
        raise GpuplanError(f"could not terminate {', '.join(sorted(tracker.failed))}; run "
                           "`gpuplan instances terminate --all` (their watchdog powers them off in any case)")
    return outcomes
