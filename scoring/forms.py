from django import forms


class FlagForm(forms.Form):
    flag = forms.CharField(
        label="Flag",
        max_length=500,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "placeholder": "FLAG{...}"}),
    )


class WriteupForm(forms.Form):
    writeup = forms.CharField(
        label="Your write-up",
        max_length=20000,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text="How you solved it: steps, tools, what you learned.",
    )
    link = forms.URLField(label="Link (optional)", required=False, max_length=500, assume_scheme="https")
