"""Unknown query parameters are a 422 naming the known ones, never silently ignored.

A typo (``?severty=high``, ``?dryrun=true``) or a filter the endpoint does not have (``?q=``,
``?sort=``) used to answer as if it were absent: the full list, or a real delete. :data:`KnownQueryOnly`
is a dependency that reads the names the matched route itself declares (its own parameters and its
dependencies', aliases included), so an endpoint that gains a filter needs no second list to keep up.
"""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from pmap.core.errors import FieldProblem, ValidationFailed


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def known_query_names(route: APIRoute) -> tuple[str, ...]:
    """The query parameter names ``route`` declares (aliases as callers spell them), sorted."""
    # a walk of a few dozen nodes per request; routes are unhashable, and a cache keyed on id() would outlive them
    return tuple(sorted(_query_names(route.dependant)))


def reject_unknown_query(request: Request) -> None:
    """422 ``validation_failed`` when the request carries a query parameter its route does not declare."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = known_query_names(route)
    unknown = sorted({name for name in request.query_params if name not in known})
    if not unknown:
        return
    listed = ", ".join(known) if known else "none"
    raise ValidationFailed(
        f"unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}; known: {listed}",
        fields=[FieldProblem(name, f"is not a query parameter of this endpoint; known: {listed}") for name in unknown],
        details={"known_query_parameters": list(known)},
    )


#: put in a router's or route's ``dependencies`` to refuse undeclared query parameters
KnownQueryOnly = Depends(reject_unknown_query)
