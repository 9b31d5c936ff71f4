"""curate: a noisy generated set in, a clean one out, with the reason for every row dropped.

Steps, one module each: exact_dedup, edit_dedup (near-exact), decontaminate, semantic_dedup,
judge, select; embed holds the cached embedder; pipeline chains them; report writes the HTML.
`seedloop curate` (seedloop/cli/curate.py) is the command. curate/review is the Label Studio step.
Nothing is imported here, so `import curate.review` stays light.
"""
