"""Schemathesis hooks for tests/live/test_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

`positive_data_acceptance` says: a request the schema allows must not be refused with a 400.
Three of the contract's 400s depend on more than the request's shape, so no schema can allow
exactly the requests that pass them:
- POST /user-progress/update: `courseContentId` must be content of *that* course (3.3);
- PATCH /user-progress/enrollments/{id}: a move to CERTIFIED needs a certificate URL sent *or
  stored* (section 2);
- GET .../activities: `startDate` must not be after `endDate` (3.4).
And rules the schema could state only by a constraint on every value nested in free-form
`metadata`: PostgreSQL cannot store the NUL character (U+0000), so the API refuses it with
DRF's own "Null characters are not allowed." (as every DRF CharField does) rather than fail the
statement with a 500; and integers beyond signed 64 bits, which no cached read could render.
(A learner's merged metadata over 16 KiB depends on what is stored, too.)

The check below is the built-in one, except that it lets through a 400 whose `errors` are
exactly one of those rules and nothing else; any other 400 to a schema-valid request still
fails. The run swaps it in for the built-in (`--exclude-checks positive_data_acceptance`).
"""

import json

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

RULES_BEYOND_THE_SCHEMA = {
    ("POST", "/user-progress/update"): {
        "courseContentId": ["This content is not part of the course."]
    },
    ("PATCH", "/user-progress/enrollments/{enrollment_id}"): {
        "certificateUrl": ["A certificate URL is required to certify an enrollment."]
    },
    ("GET", "/user-progress/{course_id}/{user_id}/activities"): {
        "startDate": ["startDate must not be after endDate."]
    },
}


NUL_REFUSED = "Null characters are not allowed."
# progress.models.METADATA_ERRORS (tests/test_fuzz_hooks.py checks that they agree).
METADATA_BEYOND_THE_SCHEMA = (
    "Integers in metadata must lie between -9223372036854775808 and 9223372036854775807"
    " (signed 64 bits).",
    "Metadata may be at most 16384 bytes as JSON, counting the stored keys this update merges"
    " with.",
)


def _errors(response):
    try:
        body = json.loads(response.content)
    except (TypeError, ValueError):
        return None
    return body.get("errors") if isinstance(body, dict) else None


@schemathesis.check
def positive_data_acceptance_beyond_schema(ctx, response, case):
    """positive_data_acceptance, minus the 400s of the three rules no schema can state."""
    if response.status_code == 400:
        errors = _errors(response)
        rule = RULES_BEYOND_THE_SCHEMA.get((case.method.upper(), case.operation.path))
        if rule is not None and errors == rule:
            return None
        if errors and all(messages == [NUL_REFUSED] for messages in errors.values()):
            return None
        beyond = METADATA_BEYOND_THE_SCHEMA
        if errors and set(errors) == {"metadata"} and set(errors["metadata"]) <= set(beyond):
            return None
    return positive_data_acceptance(ctx, response, case)
