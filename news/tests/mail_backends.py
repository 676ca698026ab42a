"""Mail servers that misbehave, for the e-mail tests (EMAIL_BACKEND = "news.tests.mail_backends.<name>")."""

import smtplib
import threading

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend


class BrokenBackend(BaseEmailBackend):
    """A mail server that is down."""

    def open(self):
        raise ConnectionRefusedError(111, "Connection refused")

    def send_messages(self, messages):
        raise ConnectionRefusedError(111, "Connection refused")


class FlakyBackend(LocmemBackend):
    """Takes `allowed` messages (into mail.outbox), then drops the connection."""

    allowed = 1

    def send_messages(self, messages):
        if FlakyBackend.allowed <= 0:
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        FlakyBackend.allowed -= len(messages)
        return super().send_messages(messages)


class BlockingBackend(LocmemBackend):
    """A slow mail server: each send waits until the test lets it go (`release`)."""

    started = threading.Event()
    release = threading.Event()

    def send_messages(self, messages):
        BlockingBackend.started.set()
        assert BlockingBackend.release.wait(10), "the test never released the mail server"
        return super().send_messages(messages)
