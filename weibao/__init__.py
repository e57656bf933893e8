"""weibao (维保): contract-driven maintenance monitoring.

    weibao.core       what both sides share: errors, models, wire format, YAML source, files, inventory
                      vocabulary, inspection rules; imports neither side
    weibao.agent      the agent on the client network: inventory, pollers, schedule, spool, shipper, traps
    weibao.collector  the collector: ingest, storage, contract engine, tickets, notifications, HTTP API
    weibao.embedded   agent and collector in one process (``weibao run``) and the demo site
"""

__version__ = "0.1.0"
