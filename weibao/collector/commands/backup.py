"""``weibao backup`` and ``weibao restore``: argparse subcommands over weibao.collector.backup."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from weibao.collector.commands.collector import config_from_args
from weibao.core.cli import DEFAULT_DATA
from weibao.core.errors import ConfigError

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("backup", help="archive the collector's state, data and configuration (online)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", type=Path, help="the archive to write (.tar.gz; must not exist)")
    out.add_argument("--out-dir", type=Path,
                     help="write weibao-YYYYMMDD-HHMMSS.tar.gz (UTC) into this directory, e.g. from a timer")
    p.add_argument("--keep", type=int, default=None, metavar="N",
                   help="with --out-dir: then remove all but the N newest weibao-*.tar.gz there")
    p.add_argument("--config", type=Path, default=None,
                   help="collector configuration: its data directory and state store, and the files it names")
    p.add_argument("--data", type=Path, default=None,
                   help=f"data directory (default: the config's data_dir, else {DEFAULT_DATA} or $WEIBAO_DATA)")
    p.add_argument("--include", type=Path, action="append", default=[], metavar="PATH",
                   help="also archive this file or directory (repeatable), e.g. /etc/weibao or a reports folder")
    p.add_argument("--pg-bin", type=Path, default=None, help="directory of pg_dump (default: the server's version)")
    p.set_defaults(handler=run_backup)

    r = sub.add_parser("restore", help="verify a backup archive and restore it into an empty data directory")
    r.add_argument("archive", type=Path, help="the archive written by weibao backup")
    r.add_argument("--data", type=Path, default=None, help="the new data directory (absent or empty)")
    r.add_argument("--verify", action="store_true", help="only check every checksum and describe the archive")
    r.add_argument("--state-url", default=None,
                   help="for an archive of a PostgreSQL state: the empty database to restore into")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--files-root", type=Path, default=Path("/"),
                       help="configuration files go to their original absolute path under this root "
                            "(default: %(default)s)")
    where.add_argument("--skip-files", action="store_true", help="restore no configuration file")
    r.add_argument("--pg-bin", type=Path, default=None, help="directory of pg_restore (default: the server's version)")
    r.set_defaults(handler=run_restore)


def _fail(command: str, exc: Exception) -> int:
    print(f"weibao {command}: {exc}", file=sys.stderr)
    return 2


def run_backup(args: argparse.Namespace) -> int:
    from weibao.collector.backup.create import BackupPlan, config_files, create_backup
    from weibao.collector.backup.manifest import describe
    from weibao.collector.errors import BackupError

    try:
        cfg = config_from_args(args)
    except ConfigError as exc:
        for p in exc.problems:
            print(p, file=sys.stderr)
        return 2
    if args.keep is not None and (args.out_dir is None or args.keep < 1):
        print("weibao backup: --keep N (N >= 1) goes with --out-dir", file=sys.stderr)
        return 2
    target = args.out or args.out_dir / f"weibao-{datetime.now(UTC):%Y%m%d-%H%M%S}.tar.gz"
    plan = BackupPlan(data_dir=cfg.data_dir, state_url=cfg.resolved_state_url(),
                      files=(*config_files(cfg, args.config), *args.include), pg_bin=args.pg_bin)
    try:
        manifest = create_backup(plan, target)
    except BackupError as exc:
        return _fail("backup", exc)
    print(f"{target}: {describe(manifest)}")
    if args.keep is not None:
        for old in sorted(args.out_dir.glob("weibao-*.tar.gz"))[:-args.keep]:
            old.unlink()
            print(f"removed {old} (keeping the {args.keep} newest)")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    from weibao.collector.backup.manifest import describe
    from weibao.collector.backup.restore import RestorePlan, restore_backup, verify
    from weibao.collector.errors import BackupError

    try:
        if args.verify:
            manifest = verify(args.archive)
            print(f"{args.archive}: every checksum matches; {describe(manifest)}")
            return 0
        if args.data is None:
            print("weibao restore: give --data DIR (a new or empty directory), or --verify", file=sys.stderr)
            return 2
        plan = RestorePlan(archive=args.archive, data_dir=args.data,
                           files_root=None if args.skip_files else args.files_root, state_url=args.state_url,
                           pg_bin=args.pg_bin)
        manifest = restore_backup(plan)
    except BackupError as exc:
        return _fail("restore", exc)
    print(f"restored into {args.data}: {describe(manifest)}")
    if manifest.state.kind == "postgresql":
        print("state restored into the database of --state-url; set state_url to it in the collector config")
    return 0
