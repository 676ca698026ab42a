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
    # a text box, not type="url": the browser would refuse "gist.github.com/…", which the
    # server takes (https:// is added)
    link = forms.URLField(
        label="Link (optional)",
        required=False,
        max_length=500,
        assume_scheme="https",
        widget=forms.TextInput(attrs={"inputmode": "url", "autocomplete": "url", "spellcheck": "false"}),
        help_text="A gist, a repository or a document; https:// is added when left out.",
    )
