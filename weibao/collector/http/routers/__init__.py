"""One router per resource; ``ROUTERS`` is what the application includes, in order."""

from fastapi import APIRouter

from weibao.collector.http.routers import devices, health, ingest, maintenance, reports, tickets

ROUTERS: tuple[APIRouter, ...] = (ingest.router, devices.router, tickets.router, maintenance.router,
                                  reports.router, health.router)
