"""The API's interactive documentation, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), when
``--docs`` turns them on (:attr:`PlatformSettings.docs`); off by default.

Both pages run a third party's script on the platform's own origin, where workers' and
miners' session cookies live, so a tampered script would own every session that opens
them. FastAPI's own pages load ``swagger-ui-dist@5`` and ``redoc@2`` from a CDN by major
version, without integrity: whatever the CDN serves today runs. Here each script and
stylesheet is pinned to one release and to its SHA-384 (Subresource Integrity: the browser
refuses bytes that differ), and the page's Content-Security-Policy allows those files
and its one inline script by hash, nothing else. The hashes are of the files in the npm
packages, which the CDN serves as published.

Vendoring the bundles instead (1.5 MB of minified JavaScript) would put a third party's
build in the package to update by hand; a production platform needs neither page, and
``/openapi.json``, which is always served, is what clients and code generators read.
"""

from __future__ import annotations

import base64
import hashlib
import json
from html import escape

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

CDN = "https://cdn.jsdelivr.net/npm"
SWAGGER_UI = f"{CDN}/swagger-ui-dist@5.36.0"
SWAGGER_JS = (
    f"{SWAGGER_UI}/swagger-ui-bundle.js",
    "sha384-fUpRgC19yPykTqzdrUbdAg8NTiu16NEKf9U12J+IJWCg8/1mEI8f2+PEIz60Wyd+",
)
SWAGGER_CSS = (
    f"{SWAGGER_UI}/swagger-ui.css",
    "sha384-z/AtSaOHGn5MJ5auAHXUypohywlIWLBZo1jeGmhdpVIbCnFhxAH92cwdV41oyINc",
)
REDOC_JS = (
    f"{CDN}/redoc@2.5.4/bundles/redoc.standalone.js",
    "sha384-w447zOpYfw/1Tv/5AK9NfHTlQIqE3RVR6KY62jCyy9zNDgO64cMwGGP1Fj0zJVf5",
)


def _script_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def _policy(scripts: list[str], styles: list[str]) -> str:
    return (
        f"default-src 'none'; script-src {' '.join(scripts)}; style-src 'unsafe-inline' {' '.join(styles)}; "
        "img-src 'self' data:; font-src data:; connect-src 'self'; worker-src blob:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _tag(kind: str, asset: tuple[str, str]) -> str:
    url, integrity = asset
    if kind == "script":
        return f'<script src="{url}" integrity="{integrity}" crossorigin="anonymous"></script>'
    return f'<link rel="stylesheet" href="{url}" integrity="{integrity}" crossorigin="anonymous">'


def swagger_page(title: str, openapi_url: str) -> HTMLResponse:
    init = (
        "SwaggerUIBundle("
        + json.dumps(
            {"url": openapi_url, "dom_id": "#swagger-ui", "deepLinking": True, "layout": "BaseLayout"}
        )
        + ");"
    )
    body = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · API</title>'
        f'{_tag("link", SWAGGER_CSS)}</head><body><div id="swagger-ui"></div>'
        f"{_tag('script', SWAGGER_JS)}<script>{init}</script></body></html>"
    )
    csp = _policy([SWAGGER_JS[0], _script_hash(init)], [SWAGGER_CSS[0]])
    return HTMLResponse(body, headers={"Content-Security-Policy": csp, "Cache-Control": "no-store"})


def redoc_page(title: str, openapi_url: str) -> HTMLResponse:
    body = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · API</title>'
        f'</head><body><redoc spec-url="{escape(openapi_url)}"></redoc>{_tag("script", REDOC_JS)}</body></html>'
    )
    csp = _policy([REDOC_JS[0]], [])
    return HTMLResponse(body, headers={"Content-Security-Policy": csp, "Cache-Control": "no-store"})


def add_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` on ``app`` (left out of its schema)."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return swagger_page(app.title, openapi_url)

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return redoc_page(app.title, openapi_url)
