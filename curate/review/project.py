"""Finding and creating the review project, and listing the record ids already in it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from curate.review import tasks
from curate.review.connection import LabelStudioConnection
from curate.review.errors import ReviewError, UnknownProject

_NAMES = re.compile(r'\bname="([^"]+)"')
NEEDED = {tasks.OBJECT, tasks.OUTPUT, tasks.VERDICT}
LIST_PAGE = 1000


@dataclass(frozen=True)
class Project:
    id: int
    title: str
    created: bool = False


def find_project(conn: LabelStudioConnection, title: str) -> Project | None:
    """The project with exactly this title (the server's filter matches substrings)."""
    found = conn.call(f"looking up project '{title}'", lambda: list(conn.sdk.projects.list(title=title)))
    exact = [p for p in found if p.title == title]
    if len(exact) > 1:
        ids = ", ".join(str(p.id) for p in exact)
        raise ReviewError(f"{len(exact)} Label Studio projects are called '{title}' (ids {ids}); rename all but one")
    return Project(exact[0].id, title) if exact else None


def require_project(conn: LabelStudioConnection, title: str) -> Project:
    project = find_project(conn, title)
    if project is None:
        raise UnknownProject(f"no Label Studio project called '{title}' at {conn.url}; "
                             f"push a table first: seedloop review push TABLE --project '{title}'")
    return project


def ensure_project(conn: LabelStudioConnection, title: str, *, overlap: int = 1) -> Project:
    """The project called `title`, created with the review config when it does not exist yet.

    An existing project must have the controls the pull reads back; its config is left alone, since
    changing the config of a project with annotations can invalidate them.
    """
    project = find_project(conn, title)
    if project is not None:
        _check_config(conn, project)
        return project
    config, ref = tasks.label_config()
    try:
        created = conn.call(f"creating project '{title}'", conn.sdk.projects.create, title=title, label_config=config,
                            description=f"seedloop review of generated examples (config {ref})",
                            expert_instruction=tasks.instructions(), show_instruction=True,
                            show_collab_predictions=True, maximum_annotations=overlap)
    except ReviewError:
        # another push may have created it a moment ago: titles are unique per user, so look again
        project = find_project(conn, title)
        if project is None:
            raise
        return project
    return Project(created.id, title, created=True)


def existing_record_ids(conn: LabelStudioConnection, project_id: int) -> set[str]:
    """Record ids of the tasks already in the project (one call per page; not retried here)."""
    pages = conn.sdk.tasks.list(project=project_id, include="id,data", page_size=LIST_PAGE)
    return {t.data.get("record_id") for t in pages if t.data}


def _check_config(conn: LabelStudioConnection, project: Project) -> None:
    full = conn.call(f"reading project '{project.title}'", conn.sdk.projects.get, project.id)
    missing = NEEDED - set(_NAMES.findall(full.label_config or ""))
    if missing:
        raise ReviewError(f"project '{project.title}' exists but was not made for review (its labeling config has no "
                          f"{', '.join(sorted(missing))} control); choose another --project name")
