"""Human review in Label Studio: push records as tasks, annotate, pull verdicts back onto records.

The public surface: `connect` (from $LABEL_STUDIO_URL and $LABEL_STUDIO_API_KEY), `push_records`,
`pull_records`, `review_status`, `require_project`, the names of review.xml's controls and choices
(`OBJECT`, `OUTPUT`, `VERDICT`, `COMMENT`, `ACCEPT`, `REJECT`, and the result types `TEXTAREA`, `CHOICES`)
for code that writes annotations, and the local server helpers (`LocalLabelStudio`,
`find_label_studio`, `personal_access_token`, `sign_up`). The SDK and httpx are imported where used.
"""

from curate.review.connection import LabelStudioConnection, connect
from curate.review.errors import AuthFailed, ReviewError, UnknownProject, Unreachable
from curate.review.project import require_project
from curate.review.pull import ReviewStats, pull_records, review_status
from curate.review.push import MAX_BATCH, PushResult, check_table, push_records
from curate.review.server import (
                                  LocalLabelStudio,
                                  TokenExists,
                                  find_label_studio,
                                  free_port,
                                  personal_access_token,
                                  sign_up,
)
from curate.review.tasks import ACCEPT, CHOICES, COMMENT, OBJECT, OUTPUT, REJECT, TEXTAREA, VERDICT

__all__ = ["ACCEPT", "AuthFailed", "CHOICES", "COMMENT", "LabelStudioConnection", "LocalLabelStudio", "MAX_BATCH",
           "OBJECT", "OUTPUT", "PushResult", "REJECT", "ReviewError", "ReviewStats", "TEXTAREA", "TokenExists",
           "Unreachable", "UnknownProject", "VERDICT", "check_table", "connect", "find_label_studio", "free_port",
           "personal_access_token", "pull_records", "push_records", "require_project", "review_status", "sign_up"]
