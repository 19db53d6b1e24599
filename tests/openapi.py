"""Validate real responses against the repository's OpenAPI document."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import requests
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT = Path(__file__).resolve().parent.parent / "ledger" / "openapi.json"
URI = "urn:ledger-openapi"


@cache
def document() -> dict[str, Any]:
    return dict(json.loads(DOCUMENT.read_text()))


@cache
def _registry() -> Registry:
    resource = Resource.from_contents(document(), default_specification=DRAFT202012)
    return Registry().with_resource(URI, resource)


def _operation(path: str, method: str) -> dict[str, Any]:
    path = path.rstrip("/") or "/"  # the API ignores a trailing slash, as its document says
    for template, item in document()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path):
            return dict(item[method.lower()])
    raise AssertionError(f"{method} {path} is not in the OpenAPI document")


def check(response: requests.Response) -> None:
    """Fail unless the response's status and body are documented for its request."""
    request = response.request
    assert request.url is not None and request.method is not None
    path = "/" + request.url.split("/", 3)[3].split("?")[0]
    operation = _operation(path, request.method)
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{response.status_code} is not documented for {path}"
    if "$ref" in documented:
        documented = document()["components"]["responses"][documented["$ref"].split("/")[-1]]
    media = response.headers.get("Content-Type", "").split(";")[0]
    content = documented["content"].get(media)
    assert content is not None, f"{media} is not documented for {path} {response.status_code}"
    if media not in ("application/json", NDJSON):
        return
    schema = (
        {"$ref": URI + content["schema"]["$ref"]}
        if "$ref" in content["schema"]
        else content["schema"]
    )
    validator = Draft202012Validator(schema, registry=_registry(), format_checker=FormatChecker())
    body = response.json() if media == "application/json" else ndjson(response.content)
    validator.validate(body)


NDJSON = "application/x-ndjson"


def ndjson(content: bytes) -> list[Any]:
    """An NDJSON body as the list of its lines' values."""
    return [json.loads(line) for line in content.decode().splitlines() if line.strip()]
