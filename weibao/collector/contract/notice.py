"""Read the State Council's yearly holiday notice (国务院办公厅关于YYYY年部分节假日安排的通知) into dates.

The notice has one numbered item per holiday, in a form unchanged for two decades::

    二、春节：2月15日（农历腊月二十八、周日）至23日（农历正月初七、周一）放假调休，共9天。2月14日（周六）、
    2月28日（周六）上班。
    一、元旦：1月1日（周三）放假1天，不调休。

Each item gives the days off (one day, or a range whose end may leave out the month), their number
("共9天" or "放假1天"), and the make-up working days ("...上班"). Everything the notice says twice is
checked against itself: the weekday written beside each date, the number of days of each range, make-up
days falling on a weekend, no day both off and working. Every problem is reported as
``file:line: item: message``; nothing is guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta

from weibao.core.errors import ConfigError, Problem

# the names the shipped calendar uses (chinesecalendar's), so a site year reads like the shipped ones
NAMES = {"元旦": "New Year's Day", "春节": "Spring Festival", "清明节": "Tomb-sweeping Day", "劳动节": "Labour Day",
         "端午节": "Dragon Boat Festival", "中秋节": "Mid-autumn Festival", "国庆节": "National Day"}
_WEEKDAYS = "一二三四五六日"
_ITEM = re.compile(r"^\s*[一二三四五六七八九十]+、\s*(?P<name>[^：:]+)[：:](?P<body>.*)$")
_DATE = re.compile(r"(?:(?P<y>\d{4})年)?(?:(?P<m>\d{1,2})月)?(?P<d>\d{1,2})日(?:[（(](?P<note>[^）)]*)[）)])?")
_COUNT = re.compile(r"(?:共|放假)(?P<n>\d+)天")
_WEEKDAY = re.compile(r"(?:周|星期)(?P<w>[一二三四五六日天])")
_TITLE_YEAR = re.compile(r"关于(?P<y>\d{4})年")


@dataclass(frozen=True, slots=True)
class NoticeItem:
    """One numbered item: its days off and make-up working days."""

    line: int
    name: str          # as the notice writes it, e.g. 国庆节、中秋节
    label: str         # the name in the calendar files, e.g. National Day / Mid-autumn Festival
    days_off: tuple[date, ...]
    working_days: tuple[date, ...]


@dataclass
class Notice:
    year: int
    items: list[NoticeItem] = field(default_factory=list)

    @property
    def holidays(self) -> dict[date, str]:
        return {d: i.label for i in self.items for d in i.days_off}

    @property
    def working_days(self) -> dict[date, str]:
        return {d: i.label for i in self.items for d in i.working_days}


def notice_year(text: str) -> int | None:
    """The year in the notice's title (关于2027年部分节假日安排的通知), if it has one."""
    found = _TITLE_YEAR.search(text)
    return int(found.group("y")) if found else None


def _label(name: str) -> str:
    parts = [p.strip() for p in re.split(r"[、,，和]", name) if p.strip()]
    return " / ".join(NAMES.get(p, p) for p in parts)


class _Item:
    """Parsing one item; problems go to the shared list with this item's line and name."""

    def __init__(self, file: str, line: int, name: str, year: int, problems: list[Problem]) -> None:
        self.file, self.line, self.name, self.year = file, line, name, year
        self.problems = problems

    def problem(self, message: str) -> None:
        self.problems.append(Problem(self.file, self.line, self.name, message))

    def dates(self, text: str, month: int | None = None) -> list[date]:
        """Every date written in ``text``; a date without month or year takes them from the one before."""
        out: list[date] = []
        year = self.year
        for m in _DATE.finditer(text):
            year = int(m.group("y")) if m.group("y") else year
            if m.group("m"):
                month = int(m.group("m"))
            if month is None:
                self.problem(f"{m.group(0)}: no month")
                continue
            try:
                day = date(year, month, int(m.group("d")))
            except ValueError:
                self.problem(f"{m.group(0)}: {year}-{month:02d}-{int(m.group('d')):02d} does not exist")
                continue
            note = m.group("note") or ""
            said = _WEEKDAY.search(note)
            if said:
                w = said.group("w").replace("天", "日")
                if _WEEKDAYS.index(w) != day.weekday():
                    self.problem(f"{m.group(0)}: {day} is a {_weekday(day)}, the notice says 周{w}")
            out.append(day)
        return out


def _weekday(d: date) -> str:
    return "周" + _WEEKDAYS[d.weekday()]


def _clauses(body: str) -> tuple[str, list[str]]:
    """The clause that names the days off (…放假…), and the clauses that name make-up working days (…上班)."""
    clauses = [c for c in re.split(r"[。；;，,]", body) if c.strip()]
    off = next((c for c in clauses if "放假" in c), "")
    return off, [c for c in clauses if "上班" in c and c is not off]


def parse_notice(text: str, *, year: int, file: str = "<notice>") -> Notice:
    """The days off and make-up working days of the notice for ``year``; ConfigError lists every problem."""
    problems: list[Problem] = []
    titled = notice_year(text)
    if titled is not None and titled != year:
        problems.append(Problem(file, 1, "", f"this is the notice for {titled}, not {year}"))
    notice = Notice(year)
    for lineno, raw in enumerate(text.splitlines(), start=1):
        m = _ITEM.match(raw)
        if m is None:
            continue
        name = m.group("name").strip()
        item = _Item(file, lineno, name, year, problems)
        off_text, work_texts = _clauses(m.group("body"))
        found = item.dates(off_text.split("放假", 1)[0])
        if not found:
            item.problem("no days off found (expected e.g. 10月1日至7日放假调休，共7天)")
            continue
        if len(found) > 2:
            item.problem(f"{len(found)} dates before 放假: expected one day or a range 'A至B'")
            continue
        first, last = found[0], found[-1]
        if last < first:
            item.problem(f"the range ends ({last}) before it starts ({first})")
            continue
        days = tuple(first + timedelta(days=i) for i in range((last - first).days + 1))
        count = _COUNT.search(m.group("body"))
        if count is None:
            item.problem("the number of days (共N天) is missing")
        elif int(count.group("n")) != len(days):
            item.problem(f"共{count.group('n')}天, but {first} to {last} is {len(days)} days")
        work: list[date] = []
        month = first.month
        for sentence in work_texts:
            work += item.dates(sentence, month)
        for d in work:
            if d.weekday() < 5:
                item.problem(f"make-up working day {d} is a {_weekday(d)}: 上班 days of a notice are weekend days")
        notice.items.append(NoticeItem(lineno, name, _label(name), days, tuple(work)))
    if not notice.items and not problems:
        problems.append(Problem(file, None, "", "no holiday items found (lines such as "
                                                "'一、元旦：1月1日至3日放假调休，共3天。')"))
    seen_off: dict[date, NoticeItem] = {}
    for it in notice.items:
        for d in it.days_off:
            if d in seen_off:
                problems.append(Problem(file, it.line, it.name, f"{d} is also off under {seen_off[d].name}"))
            seen_off[d] = it
    for it in notice.items:
        for d in it.working_days:
            if d in seen_off:
                problems.append(Problem(file, it.line, it.name, f"{d} is both a day off and a working day"))
    if problems:
        raise ConfigError(problems)
    return notice
