"""The web dashboard: where staff work and managers look, and where enquirers write (issue #20).

``web.app.web_app(runtime)`` builds the Starlette sub-application that ``ops.web.build_app`` mounts
beside the health endpoints. Nothing is registered at import time.
"""
