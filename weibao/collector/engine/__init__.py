"""The live contract engine: ingested samples become fault tickets, with promotions, clocks and notices.

    setup      find and load the rule files, the calendar, notify.yaml and the maintenance file
    signals    evaluator episodes and gaps -> ticket actions (open, promote, restore, re-open, attach)
    extras     UPS on-battery traps and polls, inspection dangers that persist
    sweep      the periodic pass: gaps, promotions over time, clock alerts, auto-close
    replay     restart recovery: rebuild the evaluator from the stored samples of the month
    service    ContractEngine: one worker thread fed by Ingestor.subscribe
    wiring     ContractServices for weibao.collector.http.app: files, ticket store, dispatcher, engine
"""
