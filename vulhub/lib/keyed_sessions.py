"""Sessions in the database, reached through their key only (without Redis).

The app role may not read, list or write the django_session table: a statement injected
into a request could otherwise read every session key and sign in as anyone. It calls
vulhub_session_load(), _exists(), _save() and _delete() (migration vulhub 0002), each
of which needs the key it acts on. `clearsessions` runs as the owner, like every command.
"""

from django.contrib.sessions.backends import db
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.db import connection
from django.utils import timezone


class KeyedSessions:
    """The database half of a session store, through the vulhub_session_* functions."""

    def _get_session_from_db(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT session_data, expire_date FROM vulhub_session_load(%s)", [self.session_key or ""])
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return self.model(session_key=self.session_key, session_data=row[0], expire_date=row[1])

    def exists(self, session_key):
        with connection.cursor() as cursor:
            cursor.execute("SELECT vulhub_session_exists(%s)", [session_key])
            return cursor.fetchone()[0]

    def _save_to_db(self, must_create: bool) -> None:
        if self.session_key is None:
            return self.create()
        data = self._get_session(no_load=must_create)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT vulhub_session_save(%s, %s, %s, %s)",
                [self._get_or_create_session_key(), self.encode(data), self.get_expiry_date(), must_create],
            )
            saved = cursor.fetchone()[0]
        if not saved:
            raise CreateError if must_create else UpdateError

    def _delete_from_db(self, session_key=None) -> None:
        session_key = session_key or self.session_key
        if session_key is None:
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT vulhub_session_delete(%s)", [session_key])


class SessionStore(KeyedSessions, db.SessionStore):
    def load(self):
        stored = self._get_session_from_db()
        return self.decode(stored.session_data) if stored else {}

    def save(self, must_create=False):
        self._save_to_db(must_create)

    def delete(self, session_key=None):
        self._delete_from_db(session_key)

    @classmethod
    def clear_expired(cls):
        cls.get_model_class().objects.filter(expire_date__lt=timezone.now()).delete()
