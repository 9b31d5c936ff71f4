"""The loop: a workspace advanced one round at a time (init, cycle, status, watch).

    init_workspace(folder, seeds, pool=None, evals=None, ...)
                                         seedloop.yaml, the seed file (and a given pool and evaluation
                                         file), eval.parquet, seeds_train.parquet
    run_cycle(ws, say=print)             the next round; every step skipped when done on the same inputs
    round_rows(ws)                       per-round figures from the manifests (what `status` shows)

The student is a classifier or a generator (`train.task`, steps.plan_training); promotion, the
automatic reviewer and status follow its kind.

Not handled: a judge during the loop's curation (use `seedloop curate --judge` outside it), chat
(`messages`) seeds in the automatic reviewer, a task that changes kind mid-workspace (the new kind
starts without a warm start, and promotion compares it with the old kind's numbers), and a webhook
receiver for `watch` (it polls).
"""

from seedloop.loop.cycle import promoted_adapter, run_cycle
from seedloop.loop.init import init_workspace
from seedloop.loop.status import round_rows

__all__ = ["init_workspace", "promoted_adapter", "round_rows", "run_cycle"]
