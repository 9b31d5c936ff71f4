"""synth: seed files in, generated instruction data out, through any teacher.

The public surface other stages may use (e.g. curate's LLM judge, which must share the cache and
ledger): load_seeds, make_teacher, Teacher, TeacherClient, Limits, RequestCache, PriceTable, ChatRequest.
"""

from synth.cache import RequestCache
from synth.engine import Limits, TeacherClient
from synth.prices import PriceTable
from synth.seeds import inspect_seeds, load_seeds
from synth.teachers import ChatRequest, Completion, Teacher, make_teacher

__all__ = ["ChatRequest", "Completion", "Limits", "PriceTable", "RequestCache", "Teacher", "TeacherClient",
           "inspect_seeds", "load_seeds", "make_teacher"]
