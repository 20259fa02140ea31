"""/docs works without the internet: Swagger UI's files come from the app itself, not from a CDN."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.fakes import FakeChatModel


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings, chat_model=FakeChatModel([]))) as c:
        yield c


def test_docs_page_loads_every_script_and_stylesheet_from_the_app(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""", page.text)
    assets += re.findall(r"""url:\s*['"]([^'"]+)['"]""", page.text)  # the OpenAPI document Swagger UI reads
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), f"/docs loads {asset} from outside the app"
        served = client.get(asset)
        assert served.status_code == 200 and served.content, asset


def test_docs_page_serves_swagger_ui_itself(client):
    page = client.get("/docs").text
    script = re.search(r"""src\s*=\s*['"]([^'"]+swagger-ui-bundle\.js)['"]""", page).group(1)
    assert b"SwaggerUIBundle" in client.get(script).content


def test_redoc_is_not_served(client):
    # ReDoc loads its logo from the internet whatever it is given: only Swagger UI is offered.
    assert client.get("/redoc").status_code == 404
