"""The one error type of the registry seams (oci/, ecr.py, netguard.py, credentials.py).

``message`` is shown to users as is, so it never contains a secret; ``permanent`` says whether a
retry can help (bad credentials: no; a 5xx or a timeout: yes); ``code`` is a stable string for
tests and the UI, one of: unknown_access_key, bad_secret, decrypt, access_denied (AWS or the
registry said no: IAM, or a 403), unauthorized, image_not_found, platform_not_found, bad_image,
dns, refused, timeout, tls, forbidden_address, bad_endpoint, upstream, schema1, bad_manifest,
digest_mismatch. A registry's HTTP answers map to codes in one place: registries/oci/errors.py.
"""


class RegistryError(Exception):
    def __init__(self, message: str, *, permanent: bool, code: str = ""):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"RegistryError({self.message!r}, permanent={self.permanent}, code={self.code!r})"
