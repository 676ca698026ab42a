from django import forms


class EmailPreferenceForm(forms.Form):
    """A student's choice: their notifications by e-mail too, or on the site only (the default)."""

    email_enabled = forms.BooleanField(
        label="E-mail me my notifications",
        required=False,
        help_text="Badges, grades with their feedback, new challenges and announcements, sent to your e-mail "
        "address as they happen. Off: you see them on the site only.",
    )
