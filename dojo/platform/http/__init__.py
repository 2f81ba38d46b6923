"""The platform over HTTP: the app (:func:`dojo.platform.http.app.create_app`), the JSON API
under ``/api/v1`` (``api/``), the web UI (``web/``), the queue's plain-ASGI hot path
(``hotpath``), the FastAPI dependencies (``deps``) and the API's documentation pages
(``apidocs``). Routes call :mod:`dojo.platform.services`; nothing below imports this package.
"""
