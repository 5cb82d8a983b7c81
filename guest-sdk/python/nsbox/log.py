"""The tenant's log (``host.log``): the host tags each line with the tenant's name and
bounds its length. ``print`` and ``logging`` reach it too, through stdout and stderr."""

from wit_world.imports import host, types


def _write(level, message):
    host.log(level, str(message))


def debug(message):
    _write(types.Level.DEBUG, message)


def info(message):
    _write(types.Level.INFO, message)


def warn(message):
    _write(types.Level.WARN, message)


def error(message):
    _write(types.Level.ERROR, message)
