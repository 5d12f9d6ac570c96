"""The queue, and the one worker thread that runs its jobs through the jobs layer.

One job at a time: on a laptop's few cores two jobs would only make both slow. The worker
turns the library's progress events into messages for the page — the step, stage, losses,
time left, and a JPEG of the picture as it forms at a bounded rate, so a fast job does not
flood the page — and gives every finished, interrupted or failed job its end.
"""
from __future__ import annotations

import base64
import logging
import math
import threading
import time
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional

from .. import image as I
from .. import memory
from ..errors import Cancelled, PainterlyError, render_settings
from ..files import remove_quietly
from ..jobs import Job, RunOptions, forms, run_job, warm_up
from ..jobs.outputs import checkpoint_path, rescue_path
from ..progress import Progress
from .store import NotFound, Store

log = logging.getLogger("painterly.web")
PREVIEW_SECONDS = 0.25      # at most four previews a second
PROGRESS_SECONDS = 0.1      # and ten progress messages
PREVIEW_SIDE = 512          # long side of a preview JPEG
WARM_UP_DELAY = 2.0         # seconds after start-up (or the first job, if sooner)
FINISHED = ("done", "failed", "interrupted", "cancelled")


class QueueFull(PainterlyError):
    """The queue (or this client's share of it) is full: HTTP 429 with Retry-After."""

    def __init__(self, message: str, hint: str, retry_after: int):
        super().__init__(message, hint)
        self.retry_after = retry_after


class Conflict(PainterlyError):
    """What was asked does not fit the job's state (cancel a finished job): HTTP 409."""


def for_people(text: str) -> str:
    """A library message as the page shows it: settings by their names in the form."""
    return render_settings(text, lambda name: f"“{name.replace('_', ' ')}”")


@dataclass
class Task:
    """A job as the page sees it."""

    id: str
    session: str
    job: Job
    title: str
    status: str = "queued"
    created: float = field(default_factory=time.time)
    started: Optional[float] = None
    step: int = 0
    total: int = 0
    stage: str = ""
    losses: dict = field(default_factory=dict)
    elapsed: float = 0.0
    error: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    abort: bool = False         # when cancelled: nothing is kept (else: interrupted, kept)

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.job.kind, "title": self.title,
                "status": self.status, "created": self.created, "step": self.step,
                "total": self.total, "stage": self.stage, "losses": self.losses,
                "elapsed": round(self.elapsed, 2), "eta": eta(self), "error": self.error}


def eta(task: Task) -> Optional[float]:
    """Seconds left, from the time per step so far (None before the second step)."""
    if task.step < 2 or not task.total or task.status != "running":
        return None
    return round(task.elapsed / task.step * (task.total - task.step), 1)


Publish = Callable[[Optional[str], dict], None]     # (session or None for all, message)


class Worker:
    """A bounded queue and the thread that empties it."""

    def __init__(self, store: Store, publish: Publish, max_queue: int, per_client: int):
        self.store, self.publish = store, publish
        self.max_queue, self.per_client = max_queue, per_client
        self.queue: list[Task] = []
        self.current: Optional[Task] = None
        self.recent: list[Task] = []            # finished this launch, newest last
        self.lock = threading.Condition()
        self.stopping = False
        self.ready = threading.Event()          # warmed up: the first job starts at once
        self.thread = threading.Thread(target=self._loop, name="painterly-worker", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the running job (kept as interrupted) and the thread."""
        with self.lock:
            self.stopping = True
            if self.current is not None:
                self.current.cancel.set()
            self.lock.notify_all()
        self.thread.join(timeout)

    # -- what the page asks -------------------------------------------------------------

    def submit(self, task: Task) -> Task:
        with self.lock:
            mine = sum(t.session == task.session for t in self.queue)
            retry = self._retry_after()
            if len(self.queue) >= self.max_queue:
                raise QueueFull(f"the queue is full ({self.max_queue} jobs waiting)",
                                "wait for a job to finish", retry)
            if mine >= self.per_client:
                raise QueueFull(f"you already have {mine} jobs waiting",
                                "wait for one to finish", retry)
            self.queue.append(task)
            self.lock.notify_all()
        self._changed()
        return task

    def find(self, task_id: str, session: str) -> Task:
        """A job of this session (others' jobs are not found)."""
        with self.lock:
            for task in self._all():
                if task.id == task_id and task.session == session:
                    return task
        raise NotFound(f"no job {task_id[:40]!r}", "reload the page")

    def cancel(self, task_id: str, session: str, keep: bool) -> Task:
        """Interrupt (``keep``: the picture so far and a checkpoint stay) or abort a job:
        a queued one is removed, a running one stops within one iteration."""
        task = self.find(task_id, session)
        with self.lock:
            if task.status in FINISHED:
                raise Conflict(f"the job is already {task.status}", "nothing to stop")
            if task.status == "queued":
                self.queue.remove(task)
                task.status = "cancelled"
                self._finish(task)
            else:
                task.abort = not keep
                task.cancel.set()
        self._changed()
        return task

    def views(self, session: str) -> dict[str, Any]:
        with self.lock:
            mine = [t.view() for t in self._all() if t.session == session]
            return {"jobs": mine, "waiting": len(self.queue), "max_queue": self.max_queue,
                    "running": self.current is not None, "ready": self.ready.is_set()}

    def _all(self) -> list[Task]:
        return self.recent + ([self.current] if self.current else []) + self.queue

    def _retry_after(self) -> int:
        """A guess of when a place frees up: the running job's time left, at least 1 s."""
        left = eta(self.current) if self.current else None
        return max(1, math.ceil(left)) if left else 5

    # -- the thread ----------------------------------------------------------------------

    def _loop(self) -> None:
        with self.lock:             # let the page load first (warming up holds the GIL)
            self.lock.wait(timeout=WARM_UP_DELAY)
        if not self.stopping:
            warm_up()               # then load what the first job needs, before it comes
        self.ready.set()
        self._changed()
        while True:
            with self.lock:
                while not self.queue and not self.stopping:
                    self.lock.wait()
                if self.stopping:
                    return
                task = self.current = self.queue.pop(0)
                task.status, task.started = "running", time.time()
            self._changed()
            try:
                self._run(task)
            finally:
                with self.lock:
                    self.current = None
                    self._finish(task)
                    idle = not self.queue
                self._changed()
            if idle:
                # The command keeps freed memory for the next job's maps
                # (memory.reuse_freed_memory); with no job waiting, it goes back to the system.
                memory.release_freed_memory()

    def _run(self, task: Task) -> None:
        """Run the job; its status changes only once what stays of it is in place."""
        watch = Watch(task, self.publish)
        error = ""
        try:
            run_job(task.job, RunOptions(callback=watch, cancel=task.cancel, preview_every=1))
            status = "done"
        except Cancelled:
            status = "cancelled" if task.abort else "interrupted"
        except PainterlyError as exc:
            status, error = "failed", for_people(str(exc))
        except MemoryError:
            status, error = "failed", "out of memory: try a smaller size"
        except Exception as exc:  # a bug: one line for the page, the traceback for the log
            log.exception("job %s failed", task.id)
            status, error = "failed", f"internal error ({type(exc).__name__}); see the " \
                                      "server's log"
        self._keep(task, status)
        task.status, task.error = status, error

    def _keep(self, task: Task, status: str) -> None:
        """What stays of a job: a finished or interrupted picture goes to the history; an
        aborted or failed one leaves nothing behind."""
        output = self.store.output(task.id)
        if status in ("cancelled", "failed"):
            for path in (output, rescue_path(output), checkpoint_path(output)):
                remove_quietly(path)
            return
        if self.store.picture(task.id, missing_ok=True) is None:
            return
        entry = {"id": task.id, "kind": task.job.kind, "title": task.title, "status": status,
                 "created": task.created,
                 "seconds": round(time.time() - (task.started or task.created), 2),
                 "stopped_at": [task.step, task.total]}
        if status == "interrupted":     # the picture so far carries no record: keep it here,
            entry["settings"] = forms.restorable(task.job.kind, asdict(task.job.config))
            entry["uploads"] = [Path(p).stem for p in task.job.inputs]  # and what it painted
        self.store.remember(entry)

    def _finish(self, task: Task) -> None:
        self.recent = (self.recent + [task])[-50:]

    def _changed(self) -> None:
        self.publish(None, {"type": "queue"})


class Watch:
    """The job's progress callback: messages at a bounded rate, previews as JPEG."""

    def __init__(self, task: Task, publish: Publish):
        self.task, self.publish = task, publish
        self.last_progress = self.last_preview = -math.inf

    def __call__(self, event: Progress) -> None:
        task, now = self.task, time.perf_counter()
        task.step, task.total, task.stage = event.step, event.total, event.stage
        task.losses = {k: round(v, 5) for k, v in event.losses.items()}
        task.elapsed = time.time() - (task.started or task.created)
        last = event.step == event.total
        if last or now - self.last_progress >= PROGRESS_SECONDS:
            self.last_progress = now
            self.publish(task.session, {"type": "progress", **task.view()})
        if event.image is not None and (last or now - self.last_preview >= PREVIEW_SECONDS):
            self.last_preview = now
            jpeg = I.encode_jpeg(event.image, PREVIEW_SIDE)
            self.publish(task.session, {"type": "preview", "id": task.id, "step": event.step,
                                        "jpeg": base64.b64encode(jpeg).decode()})
