"""HTTP: the lookup API (:mod:`.api`, :mod:`.lookup`, :mod:`.lookup_server`), its OpenAPI document
(:mod:`.openapi`), and the dashboard (:mod:`.dashboard`, :mod:`.dashboard_server`, ``dashboard_assets/``)."""

__all__ = ["api", "dashboard", "dashboard_server", "lookup", "lookup_server", "openapi"]
