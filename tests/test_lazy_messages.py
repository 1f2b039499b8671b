"""courseprogress.middleware.LazyMessageMiddleware: Django's message middleware, with the
storage built only by a request that uses it."""

from django.contrib import messages
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils.functional import empty

from courseprogress.middleware import LazyMessageMiddleware


def run(view, cookies=None):
    request = RequestFactory().get("/")
    request.COOKIES.update(cookies or {})
    SessionMiddleware(lambda r: None).process_request(request)
    response = LazyMessageMiddleware(view)(request)
    return request, response


def test_a_request_that_never_uses_messages_builds_and_writes_nothing():
    request, response = run(lambda r: HttpResponse("ok"))
    assert request._messages._wrapped is empty  # the storage was never built
    assert "messages" not in response.cookies


def test_a_message_added_is_stored_and_read_back_on_the_next_request():
    def add(request):
        messages.success(request, "Saved.")
        return HttpResponse("ok")

    _, response = run(add)
    assert "messages" in response.cookies
    seen = []

    def read(request):
        seen.extend(str(m) for m in messages.get_messages(request))
        return HttpResponse("ok")

    _, second = run(read, {"messages": response.cookies["messages"].value})
    assert seen == ["Saved."]
    assert second.cookies["messages"].value == ""  # consumed: the cookie is cleared
