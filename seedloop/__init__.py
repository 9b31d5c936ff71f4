"""seedloop: turn a handful of seed examples into a specialist model.

The shared pieces live here: the record schema, table I/O, errors, text utilities and the CLI.
The stages (synth, curate, active_learning, train) are sibling packages that exchange record tables.
"""

__version__ = "0.1.0"
