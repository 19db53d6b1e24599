"""Every route fuzzed from the OpenAPI document (schemathesis): whatever the input, no 5xx, and
every response is documented, with the documented status, content type and body schema."""

import json
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import FunctionServer, examples
from tests.openapi import DOCUMENT, NDJSON, ndjson

schema = schemathesis.openapi.from_path(str(DOCUMENT))


@schemathesis.serializer(NDJSON)
def to_ndjson(ctx: Any, value: Any) -> bytes:
    """A generated array as NDJSON: one JSON value per line."""
    lines = value if isinstance(value, list) else [value]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


@schemathesis.deserializer(NDJSON)
def from_ndjson(ctx: Any, response: Any) -> list[Any]:
    return ndjson(response.content)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@schema.parametrize()
@settings(max_examples=examples(0.3), deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail_or_answer_off_contract(
    case: Any, http_function: FunctionServer
) -> None:
    case.call_and_validate(base_url=http_function.base, checks=CHECKS, timeout=60)
