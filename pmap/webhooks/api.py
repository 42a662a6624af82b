"""Webhook endpoints: secret lifecycle under /api/v1 and receivers under /hooks."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["webhooks"])  # mounted under /api/v1
receiver_router = APIRouter(tags=["webhook receivers"])  # mounted at the root: /hooks/{integration_id}
