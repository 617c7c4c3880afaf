"""Outages as one line in the task log: what a task could not reach, and what to check.

A worker that cannot see the shared files (``SharedPathUnavailable``), reach the warehouse
(``WarehouseUnavailable``) or the MLflow tracking server (``RegistryUnavailable``) fails the
task that needed it. Airflow logs every failed task's exception with its traceback; the
library frames under an outage (botocore, libpq, urllib3) say nothing a person can act on.
So a task body runs inside :func:`one_line_outages`: the reason is logged as one ERROR line
first, and the task fails with an ``AirflowException`` that carries the same line and no
chained traceback. It stays retryable (the task's retries, with backoff): an outage usually
heals; a wrong setting fails every try with the same line.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar, cast

from airflow.sdk.exceptions import AirflowException

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def outage_types() -> tuple[type[BaseException], ...]:
    from churnops.registry.tracking import RegistryUnavailable
    from churnops.storage import SharedPathUnavailable
    from churnops.warehouse import WarehouseUnavailable

    return (SharedPathUnavailable, WarehouseUnavailable, RegistryUnavailable)


@contextlib.contextmanager
def one_line_outages() -> Iterator[None]:
    """Turn an outage raised in the block into one log line and a short task failure."""
    try:
        yield
    except outage_types() as error:
        line = " ".join(str(error).split())
        log.error("%s: %s", type(error).__name__, line)
        raise AirflowException(f"{type(error).__name__}: {line}") from None


def reports_outages(function: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of :func:`one_line_outages` for a task body (a generator's body too:
    its outages happen while Airflow iterates it)."""
    if inspect.isgeneratorfunction(function):

        @functools.wraps(function)
        def generator(*args: P.args, **kwargs: P.kwargs) -> Any:
            with one_line_outages():
                return (yield from cast("Iterator[Any]", function(*args, **kwargs)))

        return cast("Callable[P, R]", generator)

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with one_line_outages():
            return function(*args, **kwargs)

    return wrapper
