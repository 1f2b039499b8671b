"""Changes proposed for files the bench does not own, in a form the bench can measure.

Each function here is a drop-in replacement for the function of the same name elsewhere; the
bench swaps it in only when asked (`--variant`, see bench/variants.py). Once a proposal is
adopted in its own module, the copy here goes (the one-scan analytics now live in
progress.selectors.course_analytics).
"""

from django.http import Http404

# --- cached reads kept as rendered JSON ------------------------------------------------------
#
# progress.selectors caches the data (dicts of rows) and every hit unpickles it and renders it
# again. Kept as the bytes the renderer makes (courseprogress.renderers.dumps), a hit is one
# Redis read and a copy: the renderer splices the fragment into the envelope.


def _as_fragment(key: str, stamp, compute, ttl: int):
    from courseprogress.renderers import dumps, json_fragment
    from progress import cache

    entry = cache.cache.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        return json_fragment(entry["json"])
    data = compute()
    body = dumps(data)
    if body is None:  # no orjson: keep the data, uncached
        return data
    cache.cache.set(key, {"stamp": stamp, "json": body}, ttl)
    return json_fragment(body)


def get_learner_progress(*, course_id: int, user_id: int):
    from progress import cache, selectors

    version = cache.learner_version(course_id=course_id, user_id=user_id)
    if version is None:
        return selectors.learner_progress(course_id=course_id, user_id=user_id)
    return _as_fragment(
        cache.learner_key(course_id, user_id) + ":json",
        version,
        lambda: selectors.learner_progress(course_id=course_id, user_id=user_id),
        cache.ttl("LEARNER_PROGRESS"),
    )


def get_course_page(*, course_id: int, params) -> dict:
    from progress import cache, selectors

    params = selectors._relevant(params, selectors.COURSE_PAGE_PARAMS)
    stamp = cache.course_stamp(course_id)
    if stamp is None:
        raise Http404("Course not found.")
    key = cache.course_page_key(course_id, params)
    entry = cache.cache.get(key + ":json")
    if isinstance(entry, dict) and entry.get("stamp") == stamp:
        from courseprogress.renderers import json_fragment

        return {"results": json_fragment(entry["json"]), "pagination": entry["pagination"]}
    page = selectors.course_page(course_id=course_id, params=params)
    from courseprogress.renderers import dumps, json_fragment

    body = dumps(page["results"])
    if body is None:
        return page
    cache.cache.set(
        key + ":json",
        {"stamp": stamp, "json": body, "pagination": page["pagination"]},
        cache.ttl("COURSE_PAGE"),
    )
    return {"results": json_fragment(body), "pagination": page["pagination"]}
