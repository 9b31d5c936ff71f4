"""Teacher requests on Ray workers, everything around them on the driver.

`RayTeacher` is a Teacher whose `complete` runs on a pool of Ray actors, each holding a real teacher
built from the spec (an API client, or a local model loaded once per actor). Everything else stays
in the driver's `TeacherClient` and scheduler, unchanged: the request cache is looked up before a
request is dispatched (a cached request is never sent), twin requests in flight are sent once, the
budget is reserved, the rate limits (requests and tokens per minute) are acquired, and the ledger is
written by one process. One admission point is global by construction, so no limiter actor is needed.

Retries stay ours too: actor methods run with Ray's own retries off, so every send passes the
limiter and the budget, and a worker that dies mid-request is a transient error that the client
retries (the actor is restarted). What is not handled: a request whose worker died after the
provider billed it is paid again, as with a dropped connection locally.

API keys travel as `Secret` arguments, never as a runtime_env (which Ray records and shows), and
print as '***'.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from seedloop.core.errors import ConfigError, TeacherError
from seedloop.executors import ray_init
from synth.teachers.base import ChatRequest, Completion, Teacher, TransientError

KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
ERRORS = {"ConfigError": ConfigError, "TeacherError": TeacherError}


class Secret:
    """A value that never shows in a repr, a log line or an error message."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self):   # pickled for Ray as the value itself, wrapped again on the other side
        return (Secret, (self._value,))


@dataclass(frozen=True)
class TeacherRecipe:
    """What a worker needs to build the teacher: the spec, the base URL, and the driver's key if any."""

    spec: str
    base_url: str | None = None
    key: Secret | None = None

    @classmethod
    def from_env(cls, spec: str, base_url: str | None = None) -> "TeacherRecipe":
        provider = spec.partition(":")[0]
        base_url = base_url or (os.environ.get(URL_ENV[provider]) if provider in URL_ENV else None) or None
        key = os.environ.get(KEY_ENV.get(provider, ""))
        return cls(spec, base_url, Secret(key) if key else None)

    def build(self) -> Teacher:
        from synth.teachers import make_teacher

        provider = self.spec.partition(":")[0]
        if self.key is not None:   # a worker process is the actor's own: its environment is ours to set
            os.environ[KEY_ENV[provider]] = self.key.reveal()
        return make_teacher(self.spec, base_url=self.base_url)


class TeacherWorker:
    """A Ray actor (async): one teacher, many requests in flight. Errors come back as values, so the
    driver raises our own error types (Ray would wrap them) and never sees a traceback with a key."""

    def __init__(self, recipe: TeacherRecipe):
        self._recipe = recipe
        self._teacher: Teacher | None = None
        self._sends: list[float] = []

    async def start(self) -> tuple:
        try:
            if self._teacher is None:
                self._teacher = self._recipe.build()
        except ConfigError as exc:
            return ("error", "ConfigError", str(exc))
        t = self._teacher
        return ("ok", t.provider, t.model, t.honors_prefill, t.endpoint)

    async def complete(self, request: ChatRequest) -> tuple:
        started = await self.start()   # after a restart, the teacher is built again here
        if started[0] != "ok":
            return started
        self._sends.append(time.time())
        try:
            return ("ok", await self._teacher.complete(request))
        except TransientError as exc:
            return ("transient", str(exc), exc.retry_after)
        except (ConfigError, TeacherError) as exc:
            return ("error", type(exc).__name__, str(exc))

    async def sends(self) -> list[float]:
        return list(self._sends)

    async def aclose(self) -> None:
        if self._teacher is not None:
            await self._teacher.aclose()


def _raise(reply: tuple):
    raise ERRORS[reply[1]](reply[2])


class RayTeacher(Teacher):
    """A teacher spread over `workers` Ray actors (default: one per alive node). API teachers reserve
    no CPU (their workers wait on the network); a local model reserves `cpus_per_worker` (default 1)."""

    def __init__(self, spec: str = "local", *, base_url: str | None = None, workers: int | None = None,
                 cpus_per_worker: float | None = None, address: str | None = None, max_restarts: int = 3):
        ray = ray_init(address)
        self._ray = ray
        recipe = TeacherRecipe.from_env(spec, base_url)
        local = spec.partition(":")[0] in ("", "local")
        if workers is None:
            workers = max(1, sum(1 for n in ray.nodes() if n.get("Alive")))
        if workers < 1:
            raise ConfigError(f"a Ray teacher needs at least one worker, got {workers}")
        cpus = cpus_per_worker if cpus_per_worker is not None else (1 if local else 0)
        actor = ray.remote(TeacherWorker).options(num_cpus=cpus, max_restarts=max_restarts, max_task_retries=0,
                                                  scheduling_strategy="SPREAD")
        self._workers = [actor.remote(recipe) for _ in range(workers)]
        self._busy = [0] * workers
        self.send_log: list[list[float]] = []
        try:
            replies = ray.get([w.start.remote() for w in self._workers])
        except ray.exceptions.RayError as exc:
            self._kill()
            raise ConfigError(f"the Ray workers could not start teacher '{spec}' (is seedloop installed on every "
                              f"node?): {exc}") from None
        except BaseException:
            self._kill()
            raise
        if replies[0][0] != "ok":
            self._kill()
            _raise(replies[0])
        _, self.provider, self.model, self.honors_prefill, self.endpoint = replies[0]   # the cache key's parts

    def __repr__(self) -> str:
        return f"RayTeacher({self.spec!r}, workers={len(self._workers)})"

    async def complete(self, request: ChatRequest) -> Completion:
        i = min(range(len(self._workers)), key=self._busy.__getitem__)   # the least busy worker
        self._busy[i] += 1
        ref = self._workers[i].complete.remote(request)
        try:
            reply = await ref
        except asyncio.CancelledError:
            # the scheduler has all it needs: abort the request on the worker, as a local one is aborted
            self._ray.cancel(ref)
            raise
        except self._ray.exceptions.RayActorError as exc:   # died, or unreachable for now
            raise TransientError(f"Ray worker {i} was lost ({type(exc).__name__})") from None
        finally:
            self._busy[i] -= 1
        if reply[0] == "ok":
            return reply[1]
        if reply[0] == "transient":
            raise TransientError(reply[1], reply[2])
        _raise(reply)

    async def aclose(self) -> None:
        """Close the teachers and end the workers, keeping `send_log`: per worker, when each request
        was handed to its teacher (time.time()), to check the spread and the global rate."""
        try:
            logs = await asyncio.gather(*[w.sends.remote() for w in self._workers], return_exceptions=True)
            self.send_log = [x if isinstance(x, list) else [] for x in logs]
            await asyncio.gather(*[w.aclose.remote() for w in self._workers], return_exceptions=True)
        finally:
            self._kill()

    def _kill(self) -> None:
        for w in self._workers:
            self._ray.kill(w)
        self._workers = []
