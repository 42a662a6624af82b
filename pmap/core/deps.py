"""Request dependencies as Annotated aliases: the app state, a database session, the settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from pmap.core.settings import Settings
from pmap.core.state import AppState


def get_state(request: Request) -> AppState:
    """The running service's state."""
    state: AppState = request.app.state.pmap  # set by the lifespan (pmap.app.create_app)
    return state


def get_session(state: Annotated[AppState, Depends(get_state)]) -> Iterator[Session]:
    """A session per request; work not committed by the service is rolled back."""
    session = state.sessions()
    try:
        yield session
    finally:
        session.close()


def get_settings_dep(state: Annotated[AppState, Depends(get_state)]) -> Settings:
    """The service's settings."""
    return state.settings


StateDep = Annotated[AppState, Depends(get_state)]
DbSession = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
