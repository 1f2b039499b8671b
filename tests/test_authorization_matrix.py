"""Every endpoint, method and role, with ids that exist and ids that do not.

One table: a row per request, a column per role, the expected status in each cell. Learners
and staff of other courses get 403 for ids that do not exist too, so nobody learns which exist.
"""

import pytest

from progress import services

UPDATE = {
    "userId": "{learner}",
    "courseId": "{course}",
    "courseContentId": "{content}",
    "progressStatus": "IN_PROGRESS",
}
BULK = {"courseId": "{course}", "userIds": ["{learner}"]}
ENROL = {"courseId": "{course}", "userId": "{learner}"}
ROLES = (
    "anon",
    "learner",
    "other_learner",
    "instructor",
    "other_instructor",
    "owner",
    "admin_user",
    "system_user",
)
MISSING = 987654
MANY = "&".join(f"p{n}=1" for n in range(1001))

# name: (method, path, body), then the expected status for each role, in ROLES order.
# fmt: off
MATRIX = {
    #                                                                                      anon learner other instr o.instr owner admin system
    "learner progress":                 (("get", "/user-progress/{course}/{learner}", None),                     (401, 200, 403, 200, 403, 200, 200, 403)),
    "learner progress, missing course": (("get", "/user-progress/{missing}/{learner}", None),                    (401, 404, 403, 403, 403, 403, 404, 403)),
    "learner progress, missing user":   (("get", "/user-progress/{course}/{missing}", None),                     (401, 403, 403, 404, 403, 404, 404, 403)),
    "activities":                       (("get", "/user-progress/{course}/{learner}/activities", None),          (401, 200, 403, 200, 403, 200, 200, 403)),
    "activities, missing course":       (("get", "/user-progress/{missing}/{learner}/activities", None),         (401, 404, 403, 403, 403, 403, 404, 403)),
    "activities, missing user":         (("get", "/user-progress/{course}/{missing}/activities", None),          (401, 403, 403, 404, 403, 404, 404, 403)),
    "course page":                      (("get", "/user-progress/course/{course}/all", None),                    (401, 403, 403, 200, 403, 200, 200, 403)),
    "course page, missing course":      (("get", "/user-progress/course/{missing}/all", None),                   (401, 403, 403, 403, 403, 403, 404, 403)),
    "analytics":                        (("get", "/user-progress/course/{course}/analytics", None),              (401, 403, 403, 200, 403, 200, 200, 403)),
    "analytics, missing course":        (("get", "/user-progress/course/{missing}/analytics", None),             (401, 403, 403, 403, 403, 403, 404, 403)),
    "update for the learner":           (("post", "/user-progress/update", UPDATE),                              (401, 200, 403, 403, 403, 403, 200, 200)),
    "update, missing course":           (("post", "/user-progress/update", {**UPDATE, "courseId": "{missing}"}), (401, 404, 403, 403, 403, 403, 404, 404)),
    "update, missing user":             (("post", "/user-progress/update", {**UPDATE, "userId": "{missing}"}),   (401, 403, 403, 403, 403, 403, 404, 404)),
    "bulk":                             (("post", "/user-progress/bulk", BULK),                                  (401, 200, 403, 200, 403, 200, 200, 403)),
    "bulk, missing course":             (("post", "/user-progress/bulk", {**BULK, "courseId": "{missing}"}),     (401, 404, 403, 403, 403, 403, 404, 403)),
    "bulk, missing user":               (("post", "/user-progress/bulk", {**BULK, "userIds": ["{missing}"]}),    (401, 403, 403, 200, 403, 200, 200, 403)),
    "enrol the learner":                (("post", "/user-progress/enrollments", ENROL),                          (401, 200, 403, 200, 403, 200, 200, 200)),
    "enrol, missing course":            (("post", "/user-progress/enrollments", {**ENROL, "courseId": "{missing}"}), (401, 404, 403, 403, 403, 403, 404, 404)),
    "enrol, missing user":              (("post", "/user-progress/enrollments", {**ENROL, "userId": "{missing}"}),   (401, 403, 403, 404, 403, 404, 404, 404)),
    "move an enrollment":               (("patch", "/user-progress/enrollments/{enrollment}", {"metadata": {}}), (401, 403, 403, 200, 403, 200, 200, 403)),
    "move, missing enrollment":         (("patch", "/user-progress/enrollments/{missing}", {"metadata": {}}),    (401, 403, 403, 403, 403, 403, 404, 403)),
    "wrong method on update":           (("put", "/user-progress/update", {}),                                   (401, 405, 405, 405, 405, 405, 405, 405)),
    "wrong method on analytics":        (("delete", "/user-progress/course/{course}/analytics", None),           (401, 403, 403, 405, 403, 405, 405, 403)),
    "wrong method on enrollment":       (("get", "/user-progress/enrollments/{enrollment}", None),               (401, 405, 405, 405, 405, 405, 405, 405)),
    # Bad formats and query strings come after authorisation (issue 13): nothing before 401/403.
    "course page, unknown format":      (("get", "/user-progress/course/{course}/all?format=xml", None),         (401, 403, 403, 400, 403, 400, 400, 403)),
    "progress, unknown format":         (("get", "/user-progress/{course}/{learner}?format=xml", None),          (401, 400, 403, 400, 403, 400, 400, 403)),
    "course page, 1001 parameters":     (("get", "/user-progress/course/{course}/all?" + MANY, None),            (401, 403, 403, 400, 403, 400, 400, 403)),
    # An endpoint whose role check reads the body (3.3) refuses an unusable query string first.
    "update, 1001 parameters":          (("post", "/user-progress/update?" + MANY, UPDATE),                      (401, 400, 400, 400, 400, 400, 400, 400)),
}
# fmt: on

CASES = [
    pytest.param(name, role, expected, id=f"{name} / {role}")
    for name, (_, statuses) in MATRIX.items()
    for role, expected in zip(ROLES, statuses, strict=True)
]


def fill(template, ids):
    if isinstance(template, str):
        if template.startswith("{") and template.endswith("}") and template[1:-1] in ids:
            return ids[template[1:-1]]
        return template.format(**ids)
    if isinstance(template, dict):
        return {key: fill(value, ids) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, ids) for value in template]
    return template


@pytest.mark.parametrize(("name", "role", "expected"), CASES)
def test_matrix(request, client_for, course, contents, learner, name, role, expected):
    for persona in ROLES[1:]:
        request.getfixturevalue(persona)  # every persona exists in every cell
    enrollment, _ = services.enrol(user_id=learner.pk, course_id=course.pk)
    ids = {
        "course": course.pk,
        "learner": learner.pk,
        "content": contents[0].pk,
        "enrollment": enrollment.pk,
        "missing": MISSING,
    }
    (method, path, body), _ = MATRIX[name]
    client = client_for(None if role == "anon" else request.getfixturevalue(role))
    kwargs = {"format": "json"} if body is not None else {}
    response = (
        getattr(client, method)(fill(path, ids), fill(body, ids), **kwargs)
        if body is not None
        else getattr(client, method)(fill(path, ids))
    )
    assert response.status_code == expected, response.content
    assert response.json()["success"] is (expected < 400)
