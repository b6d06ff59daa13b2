"""The app setting "Proxy public images too"."""

from django import forms


class ProxyPublicForm(forms.Form):
    proxy_public_images = forms.BooleanField(required=False)
