"""IVR flows: menus, prompts, digit collection, data dips and actions.

Flows are YAML files (``config/ivr/<name>.yaml``) loaded and checked once by
:func:`load_flows`, whose :class:`FlowError` names the file, line and key of
every problem. :func:`analyse` finds unreachable nodes and loops that wait for
no input. :func:`run_flow` runs a flow against a :class:`CallSession`, which
call control implements on a real call; each node is a task made by
:func:`make_task` from its configuration.
"""

from ._analysis import FlowIssue, analyse
from ._calendar import HolidayCalendar, TimeWindow
from ._interpreter import FlowResult, run_flow
from ._loader import FlowError, check_queues, load_flow, load_flows
from ._schema import (
    Announcements,
    Case,
    CollectNode,
    ConditionNode,
    Flow,
    GotoNode,
    HangupNode,
    HttpNode,
    LanguageNode,
    MenuNode,
    Node,
    PlayNode,
    PromptEntry,
    QueueNode,
    SetNode,
    SurveyNode,
    TransferNode,
    VariableTest,
    When,
)
from ._session import (
    CallerHungUp,
    CallSession,
    Digits,
    Number,
    PlayItem,
    Prompt,
    Silence,
    Text,
    Wav,
)
from ._tasks import FlowContext, NodeTask, Outcome, make_task, render

__all__ = [
    "Announcements",
    "CallSession",
    "CallerHungUp",
    "Case",
    "CollectNode",
    "ConditionNode",
    "Digits",
    "Flow",
    "FlowContext",
    "FlowError",
    "FlowIssue",
    "FlowResult",
    "GotoNode",
    "HangupNode",
    "HolidayCalendar",
    "HttpNode",
    "LanguageNode",
    "MenuNode",
    "Node",
    "NodeTask",
    "Number",
    "Outcome",
    "PlayItem",
    "PlayNode",
    "Prompt",
    "PromptEntry",
    "QueueNode",
    "SetNode",
    "Silence",
    "SurveyNode",
    "Text",
    "TimeWindow",
    "TransferNode",
    "VariableTest",
    "Wav",
    "When",
    "analyse",
    "check_queues",
    "load_flow",
    "load_flows",
    "make_task",
    "render",
    "run_flow",
]
