"""The web console: pages served by PMAP at ``/`` over the same JSON API (``/api/v1``) as every other client."""
