"""The class roster and the gradebook in the admin (registered after the apps they read)."""
