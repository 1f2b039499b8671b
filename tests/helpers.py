"""Small helpers shared by the endpoint tests."""

from progress.models import ContentProgress, Enrollment


def snapshot():
    """Everything stored about progress, to show that a refused request changed nothing."""
    return (
        list(ContentProgress.objects.order_by("id").values()),
        list(Enrollment.objects.order_by("id").values()),
    )


def post_update(client, **body):
    return client.post("/user-progress/update", body, format="json")
