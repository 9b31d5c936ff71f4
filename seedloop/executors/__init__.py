"""Where a job runs: `local` (this process, the default) or `ray` (a Ray cluster).

The steps (generation strategies, embedding, pool scoring) do not change with the executor; only how
their work is spread does, and results do not depend on it:
  ray_generate  teacher requests on Ray actors; scheduler, cache, ledger, budget and rate limits stay here
  ray_data      embedding and pool scoring as Ray Data `map_batches`, rows back in their original order

Ray is an optional extra (`pip install 'seedloop[ray]'`): this module does not import it, and the
local path never does.
"""

from __future__ import annotations

import logging
import os

from seedloop.core.errors import ConfigError, SeedloopError

EXECUTORS = ("local", "ray")
INSTALL = "pip install 'seedloop[ray]'"


class ExecutorError(SeedloopError):
    """The cluster lost work it was given (rows that never came back)."""


def check_executor(name: str, address: str | None = None) -> str:
    if name not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got '{name}'")
    if address and name != "ray":
        raise ConfigError(f"--ray-address {address} needs --executor ray")
    if name == "ray":
        require_ray()   # a missing extra fails now, not after the cheap steps have run
    return name


def require_ray():
    """The `ray` module, or a ConfigError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the [data] extra: pyarrow-based datasets)
    except ImportError as exc:
        raise ConfigError(f"--executor ray needs Ray with Ray Data, which is not installed ({exc}): "
                          f"{INSTALL}") from None
    return ray


def ray_init(address: str | None = None):
    """Connect to the Ray cluster at `address` (else $RAY_ADDRESS); with neither, start Ray on this
    machine for the duration of the process. Connecting twice is a no-op. Returns the `ray` module."""
    ray = require_ray()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        options = dict(logging_level=logging.WARNING)
        if address is None:
            options["include_dashboard"] = False
        try:
            ray.init(address=address, **options)
        except (ConnectionError, TimeoutError, ValueError) as exc:
            cause = exc.__cause__ or exc.__context__   # e.g. the cluster wants a token (RAY_AUTH_MODE=token)
            why = f"{exc} ({str(cause).splitlines()[0]})" if cause else str(exc)
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: {why}. Start one with "
                              f"`ray start --head`, or fix --ray-address / $RAY_ADDRESS") from None
    # our own progress bars say what runs; Ray Data's would draw over them
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray
