# In a second terminal, in the clone, while `make run` serves. Ids are those of the demo set
# on a fresh database (`make reset-demo` brings it back); `make run` prints them.
API=${API:-http://127.0.0.1:8000}  # after `make run PORT=8080`: export API=http://127.0.0.1:8080

# An API token: POST /auth/token with a demo account's name and password (`make run` printed
# the passwords; `seed_demo --password-of NAME` prints one again).
token() {
  curl -s -X POST "$API/auth/token" -H 'Content-Type: application/json' \
    -d "{\"username\": \"$1\", \"password\": \"$(.venv/bin/python manage.py seed_demo --password-of "$1")\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["results"]["token"])'
}
LEARNER="Authorization: Token $(token demo_active)"     # user 6: a learner of course 1, in progress
STAFF="Authorization: Token $(token demo_instructor)"   # user 3: an instructor of course 1

# One learner in a course: the enrollment and every progress row (the learner, staff, admins)
curl -H "$LEARNER" "$API/user-progress/1/6"
# All learners of a course, furthest first (course staff, admins)
curl -H "$STAFF" "$API/user-progress/course/1/all?status=IN_PROGRESS&sortBy=progress&order=desc&page=1&limit=20"
# Record progress on content item 4: 40 %, 12 minutes spent so far (learners post their own)
curl -H "$LEARNER" -H 'Content-Type: application/json' -X POST "$API/user-progress/update" \
     -d '{"courseId": 1, "courseContentId": 4, "progressStatus": "IN_PROGRESS", "progressPercent": 40, "activityDuration": 12}'
# The learner's activity log since 1 Jan 2025, 00:00 at UTC+2 (a + in a URL is written %2B)
curl -H "$LEARNER" "$API/user-progress/1/6/activities?startDate=2025-01-01T00:00:00%2B02:00&status=COMPLETED"
# Course analytics (course staff, admins)
curl -H "$STAFF" "$API/user-progress/course/1/analytics"
# Several learners at once (course staff, admins; a learner only for themself)
curl -H "$STAFF" -H 'Content-Type: application/json' -X POST "$API/user-progress/bulk" \
     -d '{"courseId": 1, "userIds": [5, 6, 7]}'
# Enrol a learner (staff enrol anyone, learners themselves): user 9 had DROPPED, so this re-enrols
curl -H "$STAFF" -H 'Content-Type: application/json' -X POST "$API/user-progress/enrollments" \
     -d '{"courseId": 1, "userId": 9}'
# Certify enrollment 3 (user 7, who COMPLETED the course)
curl -H "$STAFF" -H 'Content-Type: application/json' -X PATCH "$API/user-progress/enrollments/3" \
     -d '{"enrollmentStatus": "CERTIFIED", "certificateUrl": "https://example.com/certificates/3"}'
# Health (no login)
curl "$API/healthz"
