import json

import pytest

from dataset_registry import BadInputError
from dataset_registry.core.remote import Remote, parse_options

from ..conftest import run_cli, write_manifest
from ..s3kit import FAKE_KEY, FAKE_SECRET


def test_storage_options_parse_and_refuse_what_is_not_name_value(tmp_path):
    assert parse_options(["endpoint_url=http://h:1/x=y", "anon=TRUE", "key=k"]) == \
        {"endpoint_url": "http://h:1/x=y", "anon": True, "key": "k"}
    with pytest.raises(BadInputError, match="--storage-option 'nonsense': expected NAME=VALUE"):
        parse_options(["nonsense"])
    done = run_cli("--root", str(tmp_path), "list", "--storage-option", "=x", cwd=tmp_path)
    assert done.returncode == 2
    assert "expected NAME=VALUE" in done.stderr and done.stdout == ""


def test_redact_masks_option_and_environment_secrets(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-xyz")
    remote = Remote({"key": FAKE_KEY, "secret": FAKE_SECRET, "endpoint_url": "http://h"})
    text = remote.redact(f"signing with {FAKE_KEY}/{FAKE_SECRET} and env-secret-xyz at http://h")
    assert text == "signing with ***/*** and *** at http://h"
    assert FAKE_SECRET not in repr(remote)
    assert json.dumps({"x": repr(remote)}).count("***") == 0  # repr shows no option at all


@pytest.mark.parametrize(("option", "message"), [
    (" =x", "--storage-option ' =x': ' ' is not an option name"),
    ("end point=x", "--storage-option 'end point=x': 'end point' is not an option name"),
    ("endpoint_url=", "storage options for s3://: Invalid endpoint: \n"),
    ("endpoint_url=not a url", "storage options for s3://: Invalid endpoint: not a url"),
    ("bogus_option=1", "unexpected keyword argument 'bogus_option'"),
    # s3fs would take these and fail later, deep inside (`'str' object has no attribute
    # 'copy'`, `'>' not supported between 'int' and 'str'`): refused by what they take
    ("config_kwargs=oops", "storage option config_kwargs for s3://: expected a JSON object, "
                           'e.g. config_kwargs={"name": "value"}\n'),
    # a JSON object's text is never quoted: it may hold credentials
    ('client_kwargs={"aws_secret_access_key": "s3cr3t"', "storage option client_kwargs for "
                                                         "s3://: expected a JSON object"),
    ("anon=maybe", "storage option anon='maybe' for s3://: expected true or false\n"),
    ("max_concurrency=many", "storage option max_concurrency='many' for s3://: expected a "
                             "whole number\n"),
    ("default_block_size=5MB", "storage option default_block_size='5MB' for s3://: expected "
                               "a whole number\n"),
    ("session=mine", "storage option session='mine' for s3://: expected a Python object, "
                     "which only storage_options={...} in Python can give\n"),
    ("asynchronous=true", "storage option asynchronous=true for s3://: the registry calls "
                          "the filesystem synchronously; leave it out\n"),
])
def test_malformed_storage_options_are_one_line_user_errors(tmp_path, option, message):
    """Refused before any request is made (s3fs would only fail at the first one), with
    the option named: exit 2, nothing created."""
    write_manifest(tmp_path, """
sources:
  - {name: val, layout: imagenet-val}
datasets:
  - {name: anything, recipe: select, inputs: {images: val}, params: {first: 10}}
""")
    done = run_cli("--root", str(tmp_path), "--store", "s3://some-bucket/p", "--storage-option",
                   option, "resolve", "anything", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("registry: error: ") and message in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1
    assert done.stdout == ""


def test_storage_option_text_becomes_what_s3fs_takes():
    import s3fs

    from dataset_registry.core.remote import typed_options

    text = parse_options(['config_kwargs={"connect_timeout": 5, "retries": {"max_attempts": 2}}',
                          "max_concurrency=3", "default_block_size=1048576", "anon=false",
                          "endpoint_url=http://h:1"])
    assert typed_options(s3fs.S3FileSystem, "s3", text) == {
        "config_kwargs": {"connect_timeout": 5, "retries": {"max_attempts": 2}},
        "max_concurrency": 3, "default_block_size": 1048576, "anon": False,
        "endpoint_url": "http://h:1"}
    given = {"session": object(), "config_kwargs": {"a": 1}}  # Python callers: as given
    assert typed_options(s3fs.S3FileSystem, "s3", given) == given


def test_redact_masks_each_protocols_secrets(monkeypatch):
    """Secret option and environment names come from every row of protocols.py, so a
    gs:// or az:// credential is masked like an S3 one."""
    monkeypatch.setenv("AZURE_STORAGE_KEY", "azure-env-key-123")
    remote = Remote({"account_key": "az-account-key-456", "sas_token": "sv=2024&sig=abc",
                     "token": "/path/to/gcs.json", "account_name": "visible"})
    text = remote.redact("account visible, azure-env-key-123, az-account-key-456, "
                         "sv=2024&sig=abc, /path/to/gcs.json")
    assert text == "account visible, ***, ***, ***, ***"
