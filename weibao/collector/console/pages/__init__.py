"""The console's pages, one module per resource; ``ROUTERS`` is what the application includes."""

from fastapi import APIRouter

from weibao.collector.console.pages import admin, auth, contract, devices, maintenance, overview, reports, tickets

ROUTERS: tuple[APIRouter, ...] = (auth.router, overview.router, tickets.router, devices.router, maintenance.router,
                                  reports.router, contract.router, admin.router)
