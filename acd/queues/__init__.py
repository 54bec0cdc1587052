"""Agents, queues and routing strategies: the ACD core, free of I/O.

``Acd`` takes facts (agent logged in, ring answered, time passed) and returns
actions (``Ring``, ``StopRinging``, ``MaxWaitReached``, ``AgentChanged``); the
asyncio service in ``_service`` carries them out over SIP. docs/acd.md
explains the behaviour for administrators.
"""

from ._core import Acd
from ._model import (
    DEFAULT_PAUSE_REASONS,
    RING_OUTCOMES,
    STRATEGIES,
    AcdError,
    Action,
    AgentChanged,
    AgentSpec,
    AgentState,
    AgentView,
    Disposition,
    Escalation,
    JoinResult,
    MaxWaitReached,
    QueueSpec,
    QueueStats,
    Ring,
    RingOutcome,
    StopRinging,
    WaitingView,
)
from ._service import AcdService

__all__ = [
    "DEFAULT_PAUSE_REASONS",
    "RING_OUTCOMES",
    "STRATEGIES",
    "Acd",
    "AcdError",
    "AcdService",
    "Action",
    "AgentChanged",
    "AgentSpec",
    "AgentState",
    "AgentView",
    "Disposition",
    "Escalation",
    "JoinResult",
    "MaxWaitReached",
    "QueueSpec",
    "QueueStats",
    "Ring",
    "RingOutcome",
    "StopRinging",
    "WaitingView",
]
