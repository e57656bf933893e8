"""Backup and restore of a collector: a consistent online copy of its state and data plus its configuration,
in one tar.gz archive with a manifest of SHA-256 checksums.

    manifest.py   the archive's manifest (validated at the edge) and checksums
    sqlite.py     consistent copies of live SQLite databases (the sqlite3 backup API)
    postgres.py   pg_dump / pg_restore of a PostgreSQL state store, with the server's own tool version
    create.py     ``weibao backup``: what is copied, staged, checksummed and archived
    restore.py    ``weibao restore``: verify every checksum first, refuse a non-empty target, then restore

Raw samples kept in an InfluxDB-protocol server (InfluxDB, VictoriaMetrics) are that server's to back up
(its own snapshot tools); the archive holds the rollups, which are what reports and the contract read.
"""
