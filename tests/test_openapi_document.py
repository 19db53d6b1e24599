from openapi_spec_validator import validate

from ledger.http_api import ROUTES
from tests.openapi import document


def test_document_is_valid_openapi() -> None:
    validate(document())


def test_every_route_is_documented() -> None:
    paths = document()["paths"]
    for path, methods in ROUTES.items():
        assert path in paths
        assert {m.lower() for m in methods} <= set(paths[path])
    assert "/api/v1/vtid/{vtid}" in paths
