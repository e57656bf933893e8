"""Several collectors on one PostgreSQL: every one ingests, one at a time (the leader) runs the contract engine.

    leader   Elector: a session advisory lock on a dedicated connection, confirmed, given up when it cannot be
    feed     the engine feed: batches committed by any replica, in commit order, for the leader's engine
    runtime  HaRuntime: what a replica starts when it is elected and stops when it steps down
"""
