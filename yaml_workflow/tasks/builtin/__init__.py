"""The built-in task types; importing this package registers them."""

from . import basic, batch, files, http, python, shell, template  # noqa: F401
