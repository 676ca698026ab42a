from ..postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's PostgreSQL backend, pointed at the embedded server it starts on demand."""

    def get_connection_params(self):
        from .server import ensure_running

        # The app's database is created on first use; test databases (and the
        # "postgres" maintenance database) are Django's own business.
        name = self.settings_dict["NAME"]
        create = name if name and not name.startswith("test_") else None
        self.settings_dict["HOST"] = ensure_running(self.settings_dict["PGDATA"], create)
        return super().get_connection_params()
