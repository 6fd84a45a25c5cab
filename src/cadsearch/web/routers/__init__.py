"""The app's routers: ``api`` (JSON), ``pages`` (HTML), ``health``."""
