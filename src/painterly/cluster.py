"""Ray as the engine of folder jobs: ``RunOptions(engine=RayEngine(...))``.

Each actor loads the job's networks once (the kind's ``painter``, as the local engine does)
and paints the pictures it is handed one at a time, so fast actors take more; an actor that
dies is restarted and its picture retried (``max_restarts``/``max_task_retries``); a picture
that still fails is reported like a bad picture. The pictures are painted and written by the
same ``jobs.batch.paint_item`` as in the local engine, so a fast job gives the same bytes,
the same skip-and-report, record and exit code. Actors read the inputs and write the outputs
by their paths: on a cluster of several machines the folders must be on storage every node
sees at the same path. Ray (the optional extra ``painterly[ray]``) is imported only when a
RayEngine paints, never by ``import painterly`` nor by the local engine.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Iterator, Optional

from .errors import Cancelled, ConfigError, PainterlyError, check_option
from .jobs import ItemResult, Job, RunOptions
from .jobs import batch
from .jobs.clip import frame_tensor

RAY_HINT = "pip install 'painterly[ray]' (or: pip install ray)"
log = logging.getLogger(__name__)


def _ray():
    try:
        import ray  # optional extra [ray]
    except ImportError as exc:
        raise ConfigError("`engine` ray needs Ray", RAY_HINT) from exc
    return ray


class Worker:
    """One Ray actor: the job's painter, loaded once, painting one picture per call."""

    def __init__(self, job: Job, threads: int):
        import torch
        torch.set_num_threads(threads)
        self.job, self.error, self.paint = job, None, None
        try:
            self.paint = batch.painter(job)
        except PainterlyError as exc:  # reported by ready(), not as a dead actor
            self.error = exc

    def ready(self) -> Optional[PainterlyError]:
        return self.error

    def paint_item(self, source: str, out: str) -> ItemResult:
        return batch.paint_item(self.job, self.paint, source, Path(out), {})

    def paint_frames(self, frames: list) -> list:
        """A chunk of a video's frames (uint8 arrays), painted as the local engine paints
        them (the temporal pass runs afterwards, in order, where the video is written)."""
        return [self.paint(frame_tensor(pixels), Path("-"), {})[0] for pixels in frames]


class RayEngine:
    """Paint a folder's pictures on Ray actors: a local Ray started for the job (``address``
    None) or an existing cluster (``"auto"`` or ``"HOST:PORT"``); ``workers`` actors (0: as
    many as the cluster's CPUs allow at ``threads_per_worker`` each); ``threads_per_worker``
    0: as many as torch uses here, so the pictures are the local engine's bytes (with other
    counts, floating-point sums split differently across threads move a few pixels by 1/255)."""

    name = "ray"

    def __init__(self, address: Optional[str] = None, workers: int = 0,
                 threads_per_worker: int = 0, retries: int = 2):
        check_option(workers >= 0, "workers", workers, "an integer ≥ 0 (0 = as many as fit)")
        check_option(threads_per_worker >= 0, "threads_per_worker", threads_per_worker,
                     "an integer ≥ 0 (0 = as many as a local run uses)")
        if not threads_per_worker:
            import torch
            threads_per_worker = torch.get_num_threads()
        self.address, self.workers, self.threads, self.retries = (address, workers,
                                                                  threads_per_worker, retries)
        self.startup_seconds = 0.0  # Ray's start and the actors' loading, for benchmarks

    def _start(self, ray) -> bool:
        """Start (or join) Ray; True if this engine started it (and so stops it)."""
        if ray.is_initialized():
            return False
        try:
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING, configure_logging=False,
                     **({} if self.address else {"num_cpus": max(os.cpu_count() or 1,
                                                                  self.workers * self.threads)}))
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot start or join Ray at {self.address or 'this machine'} "
                              f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})",
                              "check `address` (auto joins the cluster started here with "
                              "'ray start --head')") from exc
        return True

    def paint(self, job: Job, todo: list[tuple[str, Path]],
              options: RunOptions) -> Iterator[ItemResult]:
        if not todo:
            return
        ray = _ray()
        with _Actors(self, ray, job, len(todo)) as actors:
            yield from self._hand_out(ray, actors, todo, options)

    def paint_frames(self, job: Job, frames: Iterator, options: RunOptions,
                     chunk: int = 8) -> Iterator[tuple]:
        """A video's frames painted in chunks of ``chunk`` on the actors, given back in
        order as (frame, painting); at most two chunks per actor are in flight, so memory
        stays bounded however long the video."""
        ray = _ray()
        with _Actors(self, ray, job, self.workers or 1 << 16) as actors:
            free, running, done = list(actors), {}, {}
            sent = given = 0
            source = iter(frames)
            exhausted = False
            while True:
                while not exhausted and len(running) < 2 * len(actors):
                    part = [f for _, f in zip(range(chunk), source)]
                    if not part:
                        exhausted = True
                        break
                    actor = free.pop(0) if free else actors[sent % len(actors)]
                    running[actor.paint_frames.remote(part)] = (sent, part, actor)
                    sent += 1
                if given == sent and exhausted:
                    return
                while given in done:
                    part, painted = done.pop(given)
                    given += 1
                    yield from zip(part, painted)
                if not running:
                    continue
                if options.cancel is not None and options.cancel.is_set():
                    raise Cancelled("cancelled")
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
                for ref in ready:
                    index, part, actor = running.pop(ref)
                    done[index] = (part, ray.get(ref))  # a chunk that failed for good raises
                    free.append(actor)

    def _hand_out(self, ray, actors, todo, options: RunOptions) -> Iterator[ItemResult]:
        """Each actor gets the next picture as soon as it is free."""
        queue = list(todo)
        running = {}

        def give(actor) -> None:
            source, out = queue.pop(0)
            running[actor.paint_item.remote(source, str(out))] = (actor, source)
        for actor in actors[: len(queue)]:
            give(actor)
        while running:
            if options.cancel is not None and options.cancel.is_set():
                raise Cancelled("cancelled")
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.5)
            for ref in ready:
                actor, source = running.pop(ref)
                try:
                    item = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the worker died for good
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:200]
                    item = ItemResult(source, error=f"the Ray worker painting it failed "
                                                    f"{self.retries + 1} times ({first})")
                yield item
                if queue:
                    give(actor)


class _Actors:
    """Ray started (or joined) and the engine's actors made and ready, for a ``with`` block;
    on the way out the actors go, and Ray too if the engine started it."""

    def __init__(self, engine: RayEngine, ray, job: Job, at_most: int):
        self.engine, self.ray, self.job, self.at_most = engine, ray, job, at_most
        self.actors: list = []
        self.started_here = False

    def __enter__(self) -> list:
        engine, ray = self.engine, self.ray
        started = time.perf_counter()
        self.started_here = engine._start(ray)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = min(self.at_most, engine.workers or max(1, cpus // engine.threads))
        if n * engine.threads > cpus:  # Ray would wait for CPUs that never come
            self.__exit__()
            raise ConfigError(f"{n} workers of {engine.threads} threads need {n * engine.threads} "
                              f"CPUs; the Ray cluster has {cpus}",
                              "lower `workers` or `threads_per_worker`")
        remote = ray.remote(num_cpus=engine.threads, max_restarts=engine.retries,
                            max_task_retries=engine.retries)(Worker)
        self.actors = [remote.remote(self.job, engine.threads) for _ in range(n)]
        try:
            for error in ray.get([a.ready.remote() for a in self.actors]):
                if error is not None:
                    raise error
        except BaseException:
            self.__exit__()
            raise
        engine.startup_seconds = time.perf_counter() - started
        return self.actors

    def __exit__(self, *exc) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self.started_here:
            self.ray.shutdown()
            self.started_here = False
