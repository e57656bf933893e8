"""The pure core of the contract engine: working calendar, SLA clocks, fault rules, episodes and levels.

Everything here is synchronous and takes ``now`` as an argument; the only I/O is loading the data files
(``calendar_files.load_calendar``, ``rules.load_contract_rules``).

    calendar        WorkingCalendar: working days and hours (Asia/Shanghai), protection periods
    calendar_files  load_calendar(*site_files): the shipped holiday data plus site files
    rules           load_contract_rules(path) -> ContractRules: the fault table and clock limits as data
    clocks          compute_clocks(...) -> Clocks: response, restoration, report
    episodes        ConditionTracker: fault episodes, gaps, planned time, cumulative down, availability
    evaluator       Evaluator: trackers for a whole inventory, upstream (depends_on) attachment
    levels          level_of(...) -> LevelDecision
    maintenance     MaintenanceWindow, MaintenanceSchedule
"""

from weibao.collector.contract.calendar import ProtectionPeriod, WorkingCalendar
from weibao.collector.contract.calendar_files import load_calendar
from weibao.collector.contract.clocks import Clock, Clocks, Pause, compute_clocks
from weibao.collector.contract.episodes import Availability, ConditionTracker, Cumulative, Episode, Signal, SignalKind
from weibao.collector.contract.evaluator import DeviceSpec, Evaluator, device_spec
from weibao.collector.contract.levels import LevelDecision, level_of
from weibao.collector.contract.maintenance import MaintenanceSchedule, MaintenanceWindow
from weibao.collector.contract.rules import ContractRules, RuleRow, TrackKey, load_contract_rules

__all__ = [
    "Availability", "Clock", "Clocks", "ConditionTracker", "ContractRules", "Cumulative", "DeviceSpec",
    "Episode", "Evaluator", "LevelDecision", "MaintenanceSchedule", "MaintenanceWindow", "Pause",
    "ProtectionPeriod", "RuleRow", "Signal", "SignalKind", "TrackKey", "WorkingCalendar", "compute_clocks",
    "device_spec", "level_of", "load_calendar", "load_contract_rules",
]
