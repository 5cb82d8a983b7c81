"""The tenant's configuration (``wasi:config``): the operator's
``[tenants.NAME.config]`` and secrets, and what the admin API set."""

from componentize_py_types import Err
from wit_world.imports import wasi_config_store


def get(name: str):
    """The value named ``name``, or ``None`` when there is none."""
    try:
        return wasi_config_store.get(name)
    except Err as error:
        raise RuntimeError(f"the configuration could not be read: {error.value}") from None


def all() -> dict:
    """Every name and value."""
    try:
        return dict(wasi_config_store.get_all())
    except Err as error:
        raise RuntimeError(f"the configuration could not be read: {error.value}") from None
