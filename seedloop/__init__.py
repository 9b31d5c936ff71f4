"""seedloop: turn a handful of seed examples into a specialist model.

Layers, bottom to top (tests/test_boundaries.py enforces them):
    seedloop.core     errors, records, tables, atomic writes, text, SQLite, config merging, packaged
                      models and data; imports no stage
    the stages        synth, curate, active_learning, train (and prompts): sibling packages that
                      exchange record tables and use one another only through each package's
                      public names (its `__init__`)
    the roof          seedloop.cli (one module per command group), seedloop.loop (workspaces and
                      cycles) and seedloop.executors (Ray); only these import stages freely
"""

__version__ = "0.1.0"
