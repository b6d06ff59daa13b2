import base64
import json
import re
from datetime import UTC, datetime

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command

from portal import yamlsafe
from releases.licenses import (
    LicenseError,
    canonical_json,
    license_spec,
    license_yaml,
    public_key_pem,
    sign_spec,
    verify_license_text,
)
from releases.models import LicenseField
from tests.conftest import login
from tests.yaml_bombs import alias_bomb, deep_nesting, merge_bomb


@pytest.fixture
def license_text(customer):
    return license_yaml(customer)


def test_the_license_is_shaped_as_kots_expects(customer, settings):
    settings.PORTAL_URL = "https://portal.example.com:8443"
    settings.PORTAL_PROXY_HOST = ""  # unset: the host[:port] of PORTAL_URL
    customer.expires_at = datetime(2030, 1, 31, tzinfo=UTC)
    document = yaml.safe_load(license_yaml(customer))
    assert document["apiVersion"] == "kots.io/v1beta1"
    assert document["kind"] == "License"
    assert document["metadata"]["name"] == "big-bank"
    spec = document["spec"]
    assert spec["licenseID"] == customer.license_id
    assert spec["appSlug"] == "mysampleecrapp"
    assert spec["channelID"] == str(customer.channel.pk)
    assert spec["channelName"] == "Unstable"
    assert spec["customerName"] == "Big Bank"
    assert spec["customerEmail"] == "ops@bigbank.example"
    assert spec["licenseType"] == "dev"
    assert spec["licenseSequence"] == 1
    assert spec["endpoint"] == "https://portal.example.com:8443"
    assert spec["replicatedProxyDomain"] == "portal.example.com:8443"
    assert spec["entitlements"]["expires_at"] == {
        "title": "Expiration", "description": "License Expiration",
        "value": "2030-01-31T00:00:00Z", "valueType": "String",
    }


def test_no_expiry_is_an_empty_expires_at(license_text):
    assert yaml.safe_load(license_text)["spec"]["entitlements"]["expires_at"]["value"] == ""


def test_the_proxy_domain_can_be_configured(customer, settings):
    settings.PORTAL_PROXY_HOST = "proxy.example.com"
    assert yaml.safe_load(license_yaml(customer))["spec"]["replicatedProxyDomain"] == "proxy.example.com"


def test_the_signature_is_ed25519_over_the_canonical_json_of_the_spec(license_text):
    spec = yaml.safe_load(license_text)["spec"]
    unsigned = {k: v for k, v in spec.items() if k != "signature"}
    message = json.dumps(unsigned, sort_keys=True, separators=(",", ":")).encode()
    assert canonical_json(spec) == message
    public_key = serialization.load_pem_public_key(public_key_pem().encode())
    public_key.verify(base64.b64decode(spec["signature"]), message)  # raises if wrong


def test_it_verifies_a_good_license(license_text):
    result = verify_license_text(license_text)
    assert (result.customer_name, result.app_slug, result.channel_name) == ("Big Bank", "mysampleecrapp", "Unstable")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t + "\n  : [", "not valid YAML"),
        (lambda t: t.replace("kind: License", "kind: Secret"), "wrong kind"),
        (lambda t: t.replace("apiVersion: kots.io/v1beta1", "apiVersion: v1"), "wrong apiVersion"),
        (lambda t: t.replace("channelName: Unstable", "channelName: Stable"), "signature does not match"),
        (lambda t: t.replace("licenseType: dev", "licenseType: paid"), "signature does not match"),
        (lambda t: "- a list\n", "expected a YAML mapping"),
    ],
)
def test_it_rejects_bad_or_tampered_licenses(license_text, mutate, message):
    with pytest.raises(LicenseError, match=message):
        verify_license_text(mutate(license_text))


def test_verify_license_command_says_ok(license_text, tmp_path, capsys):
    path = tmp_path / "license.yaml"
    path.write_text(license_text)
    call_command("verify_license", str(path))
    out = capsys.readouterr().out
    assert "OK" in out and "Big Bank" in out and "mysampleecrapp" in out and "Unstable" in out


@pytest.mark.parametrize(
    "content, message",
    [
        ("a: [", "not valid YAML"),
        ("apiVersion: kots.io/v1beta1\nkind: Secret\n", "wrong kind"),
    ],
)
def test_verify_license_command_fails_with_exit_1(tmp_path, capsys, db, content, message):
    path = tmp_path / "license.yaml"
    path.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        call_command("verify_license", str(path))
    assert exit_info.value.code == 1
    assert message in capsys.readouterr().err


def test_verify_license_command_fails_on_tampering(license_text, tmp_path, capsys):
    path = tmp_path / "license.yaml"
    path.write_text(license_text.replace("customerName: Big Bank", "customerName: Small Bank"))
    with pytest.raises(SystemExit) as exit_info:
        call_command("verify_license", str(path))
    assert exit_info.value.code == 1
    assert "signature does not match" in capsys.readouterr().err


def test_verify_license_command_takes_a_public_key(license_text, tmp_path, capsys):
    (tmp_path / "license.yaml").write_text(license_text)
    call_command("license_public_key")
    pem = capsys.readouterr().out
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    (tmp_path / "key.pem").write_text(pem)
    call_command("verify_license", str(tmp_path / "license.yaml"), public_key=str(tmp_path / "key.pem"))
    assert "OK" in capsys.readouterr().out


def test_a_license_signed_by_another_key_is_rejected(license_text, settings):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    settings.PORTAL_LICENSE_SIGNING_KEY = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(LicenseError, match="signature does not match"):
        verify_license_text(license_text)


def test_admins_download_the_license_file(client, alice, customer):
    response = login(client, alice).get(f"/customers/{customer.pk}/license/")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="mysampleecrapp-big-bank-license.yaml"'
    assert response["Cache-Control"] == "no-store"
    assert verify_license_text(response.content.decode()).customer_name == "Big Bank"


def test_the_license_follows_the_customer(client, alice, customer):
    """A new channel or a regenerated ID shows in the next download, with a higher sequence."""
    login(client, alice)
    client.post(f"/customers/{customer.pk}/regenerate/")
    customer.refresh_from_db()
    spec = yaml.safe_load(client.get(f"/customers/{customer.pk}/license/").content)["spec"]
    assert spec["licenseID"] == customer.license_id
    assert spec["licenseSequence"] == 2


# --- what JSON cannot carry, hostile files, expiry ------------------------------------------


@pytest.mark.parametrize("value, message", [
    ("2030-01-31", "spec.extra: a date is not allowed: put it in quotes"),
    ("2030-01-31 10:00:00", "spec.extra: a date is not allowed"),
    ("!!set {a, b}", "spec.extra: a set (!!set) is not allowed"),
    ("!!binary aGVsbG8=", "spec.extra: binary data (!!binary) is not allowed"),
    ("{1: one}", "spec.extra: the key 1 is not text"),
    ("{nested: [ok, {2030-01-31: x}]}", "spec.extra.nested[1]: the key datetime.date(2030, 1, 31) is not text"),
    ("99999999999999999999", "spec.extra: an integer beyond 64 bits is not allowed"),
    (".nan", "spec.extra: NaN and infinite numbers are not allowed"),
    ("-.inf", "spec.extra: NaN and infinite numbers are not allowed"),
])
def test_values_json_cannot_carry_are_refused_with_their_path(license_text, value, message):
    with pytest.raises(LicenseError, match=re.escape(message)):
        verify_license_text(license_text + f"  extra: {value}\n")


def test_a_key_that_is_not_text_is_refused():
    with pytest.raises(LicenseError, match="spec: the key 7 is not text"):
        canonical_json({"signature": "x", 7: "seven"})


def test_extra_typed_values_in_a_spec_stay_valid(customer):
    spec = yaml.safe_load(license_yaml(customer))["spec"]
    spec["extra"] = {"seats": 25, "sso": True, "quota": 2**63 - 1, "ratio": 0.5}
    assert b'"extra":{"quota":9223372036854775807,"ratio":0.5,"seats":25,"sso":true}' in canonical_json(spec)


@pytest.mark.parametrize("text, message", [
    (merge_bomb(), "expands to more than 10,000 nodes (aliases and merge keys counted as copies)"),
    (alias_bomb(), "expands to more than 10,000 nodes (aliases and merge keys counted as copies)"),
    (deep_nesting(2000), "nested more than 100 levels deep"),
])
def test_bombs_and_deep_nesting_are_refused(text, message):
    with pytest.raises(LicenseError, match=re.escape(message)):
        verify_license_text(text)


def test_a_license_has_a_smaller_node_budget_than_release_files():
    # 60,000 nodes: fine for a release file, far beyond any license, refused before building it.
    text = "items: &i [" + ", ".join(["x"] * 99) + "]\nmany: [" + ", ".join(["*i"] * 600) + "]\n"
    assert len(yamlsafe.load(text)["many"]) == 600
    with pytest.raises(LicenseError, match=re.escape("expands to more than 10,000 nodes")):
        verify_license_text(text)


def run_verify_license(path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        call_command("verify_license", str(path))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out + captured.err


@pytest.mark.parametrize("content, message", [
    (merge_bomb().encode(), "expands to more than 10,000 nodes"),
    (alias_bomb().encode(), "expands to more than 10,000 nodes"),
    (deep_nesting(2000).encode(), "nested more than 100 levels deep"),
    (b"a: !!int nope\n", "not valid YAML at line 1, column 4"),
    (b"kind: License\nspec: \xff\xfe\n", "not UTF-8 text"),
    (None, "cannot read: No such file or directory"),
], ids=["merge-bomb", "alias-bomb", "deep", "bad-int", "not-utf8", "missing"])
def test_verify_license_command_says_invalid_without_a_traceback(tmp_path, capsys, db, content, message):
    path = tmp_path / "license.yaml"
    if content is not None:
        path.write_bytes(content)
    code, output = run_verify_license(path, capsys)
    assert code == 1
    assert output.startswith("INVALID: ") and message in output
    assert "Traceback" not in output


def test_verify_license_command_says_invalid_for_odd_types(license_text, tmp_path, capsys):
    path = tmp_path / "license.yaml"
    path.write_text(license_text + "  extra: !!set {a}\n")
    code, output = run_verify_license(path, capsys)
    assert code == 1 and output.startswith("INVALID: ") and "spec.extra: a set (!!set) is not allowed" in output


def test_verify_license_command_says_expired_with_the_date(customer, tmp_path, capsys):
    customer.expires_at = datetime(2020, 1, 31, tzinfo=UTC)
    path = tmp_path / "license.yaml"
    path.write_text(license_yaml(customer))
    code, output = run_verify_license(path, capsys)
    assert code == 2
    assert output.startswith("EXPIRED: ") and "2020-01-31T00:00:00Z" in output and "OK" not in output


def test_verify_license_command_says_ok_before_the_expiry(customer, tmp_path, capsys):
    customer.expires_at = datetime(2999, 1, 31, tzinfo=UTC)
    path = tmp_path / "license.yaml"
    path.write_text(license_yaml(customer))
    call_command("verify_license", str(path))
    out = capsys.readouterr().out
    assert out.startswith("OK: ") and "expires 2999-01-31T00:00:00Z" in out


# --- license fields and built-ins in the signed spec --------------------------------------------


@pytest.fixture
def fields(sample_app):
    make = LicenseField.objects.create
    make(app=sample_app, name="seat_count", title="Seats", field_type="Integer", default=10, position=0)
    make(app=sample_app, name="sso", title="Single sign-on", field_type="Boolean", default=False, position=1)
    make(app=sample_app, name="tier", title="Tier", field_type="String", default="basic", is_hidden=True,
         position=2)
    make(app=sample_app, name="notes", title="Notes", field_type="Text", default="", position=3)


def test_fields_are_signed_in_the_kots_shape(customer, fields):
    customer.entitlements = {"seat_count": 2**63 - 1, "sso": True}
    customer.is_airgap_supported = True
    spec = yaml.safe_load(license_yaml(customer))["spec"]
    entitlements = spec["entitlements"]
    assert list(entitlements) == ["expires_at", "seat_count", "sso", "tier", "notes"]
    assert entitlements["seat_count"] == {"title": "Seats", "value": 2**63 - 1, "valueType": "Integer"}
    assert entitlements["sso"] == {"title": "Single sign-on", "value": True, "valueType": "Boolean"}
    assert entitlements["tier"] == {"title": "Tier", "value": "basic", "valueType": "String", "isHidden": True}
    assert entitlements["notes"] == {"title": "Notes", "value": "", "valueType": "Text"}
    assert spec["isAirgapSupported"] is True
    assert b'"isAirgapSupported":true' in canonical_json(spec)
    assert b'"seat_count":{"title":"Seats","value":9223372036854775807,"valueType":"Integer"}' in canonical_json(spec)
    verified = verify_license_text(license_yaml(customer))
    assert verified.is_airgap_supported is True
    assert [(f.name, f.value, f.value_type, f.is_hidden) for f in verified.fields] == [
        ("seat_count", 2**63 - 1, "Integer", False), ("sso", True, "Boolean", False),
        ("tier", "basic", "String", True), ("notes", "", "Text", False)]


def test_a_customer_without_values_gets_the_defaults(customer, fields):
    entitlements = license_spec(customer)["entitlements"]
    assert [entitlements[n]["value"] for n in ("seat_count", "sso", "tier", "notes")] == [10, False, "basic", ""]
    assert license_spec(customer)["isAirgapSupported"] is False


def test_a_stored_value_of_the_wrong_type_falls_back_to_the_default(customer, fields):
    customer.entitlements = {"seat_count": "many", "sso": "yes", "gone": 1}
    entitlements = license_spec(customer)["entitlements"]
    assert entitlements["seat_count"]["value"] == 10 and entitlements["sso"]["value"] is False
    assert "gone" not in entitlements


def verify_file(tmp_path, capsys, text):
    path = tmp_path / "license.yaml"
    path.write_text(text)
    try:
        call_command("verify_license", str(path))
    except SystemExit as e:
        captured = capsys.readouterr()
        return e.code, captured.out + captured.err
    captured = capsys.readouterr()
    return 0, captured.out + captured.err


def test_verify_license_prints_the_fields_and_marks_hidden_ones(customer, fields, tmp_path, capsys):
    customer.entitlements = {"seat_count": 25}
    code, output = verify_file(tmp_path, capsys, license_yaml(customer))
    assert code == 0 and output.startswith("OK: ")
    assert "air-gap bundles no" in output
    assert "  seat_count (Seats, Integer): 25\n" in output
    assert "  sso (Single sign-on, Boolean): false\n" in output
    assert "  tier (Tier, String, hidden): basic\n" in output
    assert "  notes (Notes, Text): ''\n" in output


def tamper_value(spec):
    spec["entitlements"]["seat_count"]["value"] = 1000


def tamper_hidden(spec):
    del spec["entitlements"]["tier"]["isHidden"]


def tamper_unhide(spec):
    spec["entitlements"]["tier"]["isHidden"] = False


def tamper_add(spec):
    spec["entitlements"]["unlimited"] = {"title": "Unlimited", "value": True, "valueType": "Boolean"}


def tamper_type(spec):
    spec["entitlements"]["seat_count"]["valueType"] = "String"


def tamper_airgap(spec):
    spec["isAirgapSupported"] = True


@pytest.mark.parametrize("tamper", [tamper_value, tamper_hidden, tamper_unhide, tamper_add, tamper_type,
                                    tamper_airgap])
def test_verify_license_refuses_tampered_fields(customer, fields, tmp_path, capsys, tamper):
    document = yaml.safe_load(license_yaml(customer))
    tamper(document["spec"])
    code, output = verify_file(tmp_path, capsys, yaml.safe_dump(document, sort_keys=False))
    assert code == 1
    assert output.startswith("INVALID: ") and "the signature does not match" in output
    assert "OK" not in output


@pytest.mark.parametrize("entry, message", [
    ({"title": "X", "value": "25", "valueType": "Integer"}, "spec.entitlements.x: an Integer value must be a whole number"),
    ({"title": "X", "value": 1, "valueType": "Boolean"}, "spec.entitlements.x: a Boolean value must be true or false"),
    ({"title": "X", "value": 1, "valueType": "String"}, "spec.entitlements.x: a String value must be text"),
    ({"title": "X", "value": 1.5, "valueType": "Float"}, "spec.entitlements.x: valueType 'Float' is not String"),
    ("seven", "spec.entitlements.x: expected a mapping with title, value and valueType"),
])
def test_a_signed_but_malformed_field_is_refused(customer, entry, message):
    """Only this portal's key signs; still, a malformed field says where it is wrong."""
    spec = license_spec(customer)
    spec["entitlements"]["x"] = entry
    spec["signature"] = sign_spec(spec)
    text = yaml.safe_dump({"apiVersion": "kots.io/v1beta1", "kind": "License", "spec": spec})
    with pytest.raises(LicenseError, match=re.escape(message)):
        verify_license_text(text)
