"""The console's pages: where each is served, what it is called, who may open it.

Each page is one HTML shell (``templates/page.html``) and one script (``static/js/pages/<script>.js``) that
draws it from the JSON API with the session's cookie; no page holds data the API would not give its
viewer, so the API's rules (roles, tenancy, write-only secrets) are the console's.
"""

from __future__ import annotations

from dataclasses import dataclass

from pmap.auth.principal import Role


@dataclass(frozen=True, slots=True)
class Page:
    """One console page: its path (with ``{param}`` parts), its script, its title and the role it needs."""

    path: str
    script: str
    title: str
    role: Role = Role.VIEWER
    nav: bool = False  # listed in the navigation bar (to roles that may open it)


PAGES: tuple[Page, ...] = (
    Page("/integrations", "integrations", "Integrations", nav=True),
    Page("/integrations/new", "integration_form", "New integration", Role.OPERATOR),
    Page("/integrations/{integration_id}", "integration_detail", "Integration"),
    Page("/integrations/{integration_id}/edit", "integration_form", "Edit integration", Role.OPERATOR),
    Page("/catalog", "catalog", "Catalog", nav=True),
    Page("/findings", "findings", "Findings", nav=True),
    Page("/findings/{finding_id}", "finding_detail", "Finding"),
    Page("/rules", "rules", "Rules", nav=True),
    Page("/audit", "audit", "Audit log", Role.ADMIN, nav=True),
    Page("/tokens", "tokens", "Tokens", Role.ADMIN, nav=True),
)

HOME = "/integrations"


def navigation(role: Role) -> list[Page]:
    """The navigation bar of a principal with ``role``: only pages it may open."""
    return [p for p in PAGES if p.nav and role.rank >= p.role.rank]
