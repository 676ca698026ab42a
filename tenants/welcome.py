"""Welcome e-mails with a link to choose a password, sent after the account is committed."""

from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode


def welcome_message(request, user) -> tuple[str, str]:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    path = reverse("password_reset_confirm", kwargs={"uidb64": uid, "token": token})
    link = f"{request.scheme}://{user.tenant.domain}{path}"
    subject = f"Welcome to {user.tenant.name} on VulHub"
    body = (
        f"Hello {user.first_name or user.email},\n\n"
        f"An account was made for you on {user.tenant.name}. Choose your password here:\n\n{link}\n\n"
        f"Then log in with {user.email}.\n"
    )
    return subject, body


def send_welcome_on_commit(request, user) -> None:
    subject, body = welcome_message(request, user)
    transaction.on_commit(lambda: send_mail(subject, body, None, [user.email], fail_silently=True))
