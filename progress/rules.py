"""The enrollment and progress rules, as data and small pure functions (contract section 2).

Everything that decides where an enrollment may go, where it goes by itself and what entering a
status does lives here; the services (one enrollment at a time), the set-based sync
(progress/status_sync.py, the same rule in SQL), the selectors, the admin and the commands' help
texts all read it. No database access and no Django model here, so any module may import it.
"""

from datetime import datetime

from django.db import models


class EnrollmentStatus(models.TextChoices):
    ENROLLED = "ENROLLED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    CERTIFIED = "CERTIFIED"
    DROPPED = "DROPPED"
    EXPIRED = "EXPIRED"


class ProgressStatus(models.TextChoices):
    NOT_STARTED = "NOT_STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    LOCKED = "LOCKED"


E, P = EnrollmentStatus, ProgressStatus

# --- named sets ---------------------------------------------------------------------------------

# "Active" (contract section 2): the learner may record progress, and an enrolment finds it.
ACTIVE = frozenset({E.ENROLLED, E.IN_PROGRESS, E.COMPLETED, E.CERTIFIED})
# Finished the course: counted as completed (analytics), and dated by completionDate.
FINISHED = frozenset({E.COMPLETED, E.CERTIFIED})
# The only statuses the automatic moves start from (they never go backwards).
MOVES_AUTOMATICALLY = frozenset({E.ENROLLED, E.IN_PROGRESS})
# Left the course; re-enrolment brings them back to ENROLLED.
LEFT = frozenset({E.DROPPED, E.EXPIRED})
# Progress rows that count as activity (NOT_STARTED and LOCKED do not).
ACTIVITY = frozenset({P.IN_PROGRESS, P.COMPLETED})

# --- moves --------------------------------------------------------------------------------------

# The moves a person (or a command) may ask for; the automatic moves follow the same arrows.
ALLOWED_MOVES: dict[str, frozenset[str]] = {
    E.ENROLLED: frozenset({E.IN_PROGRESS, E.DROPPED, E.EXPIRED}),
    E.IN_PROGRESS: frozenset({E.COMPLETED, E.DROPPED, E.EXPIRED}),
    E.COMPLETED: frozenset({E.CERTIFIED, E.DROPPED, E.EXPIRED}),
    E.CERTIFIED: frozenset(),
    E.DROPPED: frozenset({E.ENROLLED}),
    E.EXPIRED: frozenset({E.ENROLLED}),
}


def may_move(from_status: str, to_status: str) -> bool:
    return to_status in ALLOWED_MOVES[from_status]


def statuses_that_may_move_to(to_status: str) -> list[str]:
    """For commands and help texts: e.g. which enrollments expire_enrollments may expire."""
    return sorted(status for status, moves in ALLOWED_MOVES.items() if to_status in moves)


def automatic_target(status: str, *, contents: int, completed: int, active: int) -> str:
    """Where the automatic moves take an enrollment, from its learner's rows in the course:
    `contents` items in the course, `completed` of them COMPLETED, `active` with activity.
    Every item COMPLETED moves to COMPLETED; the first activity moves ENROLLED to IN_PROGRESS.
    Never backwards: content added later or a row corrected down leaves COMPLETED as it is."""
    if status not in MOVES_AUTOMATICALLY:
        return status
    if contents and completed >= contents:
        return E.COMPLETED
    if active and status == E.ENROLLED:
        return E.IN_PROGRESS
    return status


# --- what entering a status does ----------------------------------------------------------------


def entering(status: str, *, completed_at: datetime | None, now: datetime) -> dict:
    """The fields that change when an enrollment enters `status` at `now` (besides the status):
    - ENROLLED (re-enrolment) starts a new attempt: enrolled now, no completion date;
    - COMPLETED dates the completion, once: `completionDate` is the moment of the write that
      completed the course. (A set-based repair that saw no such write dates it from the rows:
      bulk.completion_date_expression.)"""
    if status == E.ENROLLED:
        return {"enrolled_at": now, "completed_at": None}
    if status == E.COMPLETED and completed_at is None:
        return {"completed_at": now}
    return {}


# --- progress rows ------------------------------------------------------------------------------

# How far a progress status has got; the learner merge keeps the further one.
PROGRESS_RANK: dict[str, int] = {P.NOT_STARTED: 0, P.IN_PROGRESS: 1, P.COMPLETED: 2}

# --- scores -------------------------------------------------------------------------------------

# A progress row's score towards its learner's course progress (3.2's `progress`, 3.6, the
# admin's lists, 3.5's averageProgress): a row in one of these statuses scores this much, any
# other row its percent; an item without a row scores 0. The progress is the mean of the scores
# over the course's items. progress/total_sql.py writes it into the triggers that keep each
# enrollment's total (selectors.progress_expression reads that total).
STATUS_SCORES: dict[str, int] = {P.COMPLETED: 100}
