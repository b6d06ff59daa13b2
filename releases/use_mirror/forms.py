"""How a draft names a mirrored image."""

from django import forms

from .services import PINS


class PinForm(forms.Form):
    pin = forms.ChoiceField(choices=PINS)
