"""Sessions kept in the database and read through the cache.

A signed-in page reads its session from Redis instead of the database. The database
stays the record: every write goes there first, and a session missing from the cache
(Redis restarted, emptied or down) is read from the database again. A cache that
fails is a miss, never an error, so students stay signed in while Redis is away.

A cached copy lives at most SESSION_CACHE_SECONDS. Logging out deletes both copies;
if the cache cannot be reached at that moment, a copy Redis kept could outlive the
logout until then, never longer. The database is reached through the session's key
only (vulhub/lib/keyed_sessions.py).
"""

import logging

from django.conf import settings
from django.contrib.sessions.backends import cached_db

from .lib.keyed_sessions import KeyedSessions

logger = logging.getLogger(__name__)


class SessionStore(KeyedSessions, cached_db.SessionStore):
    cache_key_prefix = "vulhub.session."

    def _cache_seconds(self, expiry_age: int) -> int:
        return max(0, min(expiry_age, settings.SESSION_CACHE_SECONDS))

    def _cache_set(self, data: dict, expiry_age: int) -> None:
        try:
            self._cache.set(self.cache_key, data, self._cache_seconds(expiry_age))
        except Exception:
            logger.warning("session not cached", exc_info=True)

    def load(self):
        try:
            data = self._cache.get(self.cache_key)
        except Exception:
            data = None
        if data is not None:
            return data
        stored = self._get_session_from_db()
        if stored is None:
            return {}
        data = self.decode(stored.session_data)
        self._cache_set(data, self.get_expiry_age(expiry=stored.expire_date))
        return data

    # exists(): the database decides (KeyedSessions), whatever a stale cache holds

    def save(self, must_create=False):
        self._save_to_db(must_create)
        self._cache_set(self._session, self.get_expiry_age())

    def delete(self, session_key=None):
        self._delete_from_db(session_key)
        session_key = session_key or self.session_key
        if session_key is None:
            return
        try:
            self._cache.delete(self.cache_key_prefix + session_key)
        except Exception:
            logger.warning("session not removed from the cache", exc_info=True)
