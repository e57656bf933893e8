"""The State Council's notice read into days off and make-up working days, every inconsistency located."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.collector.contract.notices import NOTICE_2026, NOTICE_2027
from weibao.collector.contract.calendar_files import load_calendar
from weibao.collector.contract.notice import notice_year, parse_notice
from weibao.core.errors import ConfigError


def span(first: str, last: str) -> set[date]:
    a, b = date.fromisoformat(first), date.fromisoformat(last)
    return {a + timedelta(days=i) for i in range((b - a).days + 1)}


def test_the_2026_notice_gives_the_shipped_2026_year() -> None:
    notice = parse_notice(NOTICE_2026, year=2026)
    assert notice_year(NOTICE_2026) == 2026
    assert [i.label for i in notice.items] == ["New Year's Day", "Spring Festival", "Tomb-sweeping Day", "Labour Day",
                                               "Dragon Boat Festival", "Mid-autumn Festival", "National Day"]
    off = (span("2026-01-01", "2026-01-03") | span("2026-02-15", "2026-02-23") | span("2026-04-04", "2026-04-06")
           | span("2026-05-01", "2026-05-05") | span("2026-06-19", "2026-06-21") | span("2026-09-25", "2026-09-27")
           | span("2026-10-01", "2026-10-07"))
    work = {date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9), date(2026, 9, 20),
            date(2026, 10, 10)}
    assert set(notice.holidays) == off and len(off) == 33
    assert set(notice.working_days) == work
    # and the same as the shipped data, which comes from chinesecalendar, not from this reader
    shipped = load_calendar()
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(365)]
    assert {d for d in days if shipped.holiday_name(d) and not shipped.is_working_day(d)} == off
    assert {d for d in days if d.weekday() >= 5 and shipped.is_working_day(d)} == work


def test_single_days_combined_names_and_a_day_of_the_year_before() -> None:
    notice = parse_notice(NOTICE_2027, year=2027)
    assert notice.items[-1].label == "National Day / Mid-autumn Festival"
    assert notice.items[0].working_days == (date(2026, 12, 26),)
    one_day = parse_notice("一、元旦：1月1日（周三）放假1天，不调休。", year=2025)
    assert one_day.holidays == {date(2025, 1, 1): "New Year's Day"} and one_day.working_days == {}
    cross_month = parse_notice("五、端午节：5月31日（周六）至6月2日（周一）放假，共3天。", year=2025)
    assert set(cross_month.holidays) == span("2025-05-31", "2025-06-02")


@pytest.mark.parametrize(("line", "message"), [
    ("一、元旦：1月1日（周四）至3日（周六）放假调休，共4天。", "共4天, but 2026-01-01 to 2026-01-03 is 3 days"),
    ("一、元旦：1月1日（周五）至3日（周六）放假调休，共3天。", "2026-01-01 is a 周四, the notice says 周五"),
    ("二、春节：2月30日至3月1日放假，共2天。", "2026-02-30 does not exist"),
    ("四、劳动节：5月1日（周五）至5日（周二）放假调休，共5天。5月6日（周三）上班。",
     "make-up working day 2026-05-06 is a 周三"),
    ("六、中秋节：9月27日（周日）至25日（周五）放假，共3天。", "ends (2026-09-25) before it starts"),
    ("七、国庆节：10月1日至7日放假调休。", "the number of days (共N天) is missing"),
])
def test_each_inconsistency_is_named_with_its_line_and_item(line: str, message: str) -> None:
    text = "国务院办公厅关于2026年部分节假日安排的通知\n" + line + "\n"
    with pytest.raises(ConfigError) as exc:
        parse_notice(text, year=2026, file="notice.txt")
    problems = exc.value.problems
    assert [(p.file, p.line) for p in problems] == [("notice.txt", 2)] * len(problems)
    assert any(message in p.message for p in problems), [p.message for p in problems]
    assert problems[0].key == line.split("、", 1)[1].split("：", 1)[0]


def test_wrong_year_overlaps_and_no_items_are_refused() -> None:
    with pytest.raises(ConfigError, match="notice for 2026, not 2027"):
        parse_notice(NOTICE_2026, year=2027)
    with pytest.raises(ConfigError, match="2026-10-01 is also off under 国庆节"):
        parse_notice("一、国庆节：10月1日（周四）放假1天。\n二、国庆节：10月1日（周四）放假1天。", year=2026)
    with pytest.raises(ConfigError, match="both a day off and a working day"):
        parse_notice("一、元旦：1月3日（周六）至4日（周日）放假，共2天。1月4日（周日）上班。", year=2026)
    with pytest.raises(ConfigError, match="no holiday items found"):
        parse_notice("some other text", year=2026)
