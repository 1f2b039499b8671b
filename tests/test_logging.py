import logging

from courseprogress.log import QuietCacheErrors


def make_record(error):
    try:
        raise error
    except type(error):
        import sys

        return logging.LogRecord(
            "courseprogress.cache",
            logging.ERROR,
            __file__,
            1,
            "Exception ignored",
            (),
            sys.exc_info(),
        )


def test_cache_errors_become_one_warning_line_per_second(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("courseprogress.log.time.monotonic", lambda: clock[0])
    quiet = QuietCacheErrors()
    first = make_record(ConnectionError("Connection refused"))
    assert quiet.filter(first)
    assert first.levelname == "WARNING"
    assert first.exc_info is None
    assert first.getMessage() == (
        "Cache unavailable, serving from the database: ConnectionError: Connection refused"
    )
    assert not any(quiet.filter(make_record(ConnectionError("again"))) for _ in range(5))
    clock[0] += 1.5
    later = make_record(TimeoutError("Timeout reading"))
    assert quiet.filter(later)
    assert later.getMessage().endswith("(5 more in the last second)")


def test_other_records_pass_untouched():
    record = logging.LogRecord("courseprogress.cache", logging.INFO, __file__, 1, "hello", (), None)
    assert QuietCacheErrors().filter(record)
    assert record.getMessage() == "hello"
