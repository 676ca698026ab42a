from datetime import UTC, datetime, timedelta

from vulhub.lib.ages import waited

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_less_than_a_minute_is_under_a_minute_not_zero_minutes():
    assert waited(NOW - timedelta(seconds=59), NOW) == "under a minute"
    assert waited(NOW, NOW) == "under a minute"


def test_a_minute_and_more_read_as_django_says_them():
    assert waited(NOW - timedelta(seconds=60), NOW) == "1\xa0minute"
    assert waited(NOW - timedelta(days=2, hours=3), NOW) == "2\xa0days, 3\xa0hours"
