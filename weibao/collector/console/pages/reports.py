"""Reports: the files under the data directory's ``reports/`` folder, listed, viewed and downloaded.

An HTML report is shown sandboxed (it may carry its own inline style, never a script that runs with the
console's cookies); every other format is downloaded.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from weibao.collector.console.render import page
from weibao.collector.console.reportfiles import list_reports, open_report
from weibao.collector.console.web import SECURITY_HEADERS, Denied, Reader
from weibao.collector.http.deps import REPORT_CSP, context

router = APIRouter()


@router.get("/reports")
async def reports(request: Request, who: Reader) -> Response:
    files = await run_in_threadpool(list_reports, context(request).config.data_dir)
    return page(request, who, "reports.html", files=files)


@router.get("/reports/{name:path}")
async def report_file(request: Request, who: Reader, name: str) -> Response:
    found = await run_in_threadpool(open_report, context(request).config.data_dir, name)
    if found is None:
        raise Denied(404, f"no report {name}")
    info, path = found
    download = request.query_params.get("download") == "1" or not info.name.endswith(".html")
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": REPORT_CSP}
    return FileResponse(path, media_type=info.media_type, headers=headers,
                        filename=PurePosixPath(info.name).name if download else None,
                        content_disposition_type="attachment" if download else "inline")
