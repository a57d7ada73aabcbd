"""Events a child can experience and what each one does, as a table both engines interpret (DESIGN §2).

Each event row says where the child goes and how it is counted; ``sim/kernel.py`` and the Mesa reference model
(``agents/reference_model.py``) apply the same rows, so the rules exist once.
"""
from __future__ import annotations

import numpy as np

from agents import states as S

EVENT_NAMES = ("ESCALATE", "DEESCALATE", "CASE_CLOSE", "ENTER_CARE", "MOVE", "TO_ADOPTION", "ADOPTED",
               "SGO_CAO", "REUNIFIED", "LEFT_CARE", "OTHER_EXIT", "TRANSFERRED")
EV = {n: i for i, n in enumerate(EVENT_NAMES)}
N_EVENTS = len(EVENT_NAMES)

# destination kinds: a fixed state, the entry-placement distribution, the move distribution, or the same state
TO_FIXED, TO_ENTRY, TO_MOVE, TO_SAME, TO_LEAVE = 0, 1, 2, 3, 4
# where a leaving child goes
LEAVE_NONE, LEAVE_PREV_KNOWN, LEAVE_GONE = 0, 1, 2

# cessation reasons in the model scheme (index = code); AGED_OUT happens at the 18th birthday, not by hazard
CEASE_REASONS = ("adopted", "sgo_cao", "reunified", "left_care_16_17", "aged_out", "transferred", "other_exit")
CR = {n: i for i, n in enumerate(CEASE_REASONS)}
NO_REASON = -1

#            event          dest kind  fixed state                 leave             cease reason            start cpp  reset_epi prev+1
_ROWS = {
    "ESCALATE":    (TO_FIXED, S.EDGE_OF_CARE,        LEAVE_NONE,       NO_REASON,              0, 1, 1, 0),
    "DEESCALATE":  (TO_FIXED, S.AT_HOME,             LEAVE_NONE,       NO_REASON,              0, 0, 0, 0),
    "CASE_CLOSE":  (TO_LEAVE, -1,                    LEAVE_PREV_KNOWN, NO_REASON,              0, 0, 0, 0),
    "ENTER_CARE":  (TO_ENTRY, -1,                    LEAVE_NONE,       NO_REASON,              1, 0, 1, 0),
    "MOVE":        (TO_MOVE,  -1,                    LEAVE_NONE,       NO_REASON,              0, 0, 0, 0),
    "TO_ADOPTION": (TO_FIXED, S.PLACED_FOR_ADOPTION, LEAVE_NONE,       NO_REASON,              0, 0, 0, 0),
    "ADOPTED":     (TO_LEAVE, -1,                    LEAVE_GONE,       CR["adopted"],          0, 0, 0, 0),
    "SGO_CAO":     (TO_FIXED, S.KINSHIP_ORDER,       LEAVE_NONE,       CR["sgo_cao"],          0, 0, 1, 1),
    "REUNIFIED":   (TO_FIXED, S.RETURNED_HOME,       LEAVE_NONE,       CR["reunified"],        0, 0, 1, 1),
    "LEFT_CARE":   (TO_LEAVE, -1,                    LEAVE_GONE,       CR["left_care_16_17"],  0, 0, 0, 0),
    "OTHER_EXIT":  (TO_LEAVE, -1,                    LEAVE_GONE,       CR["other_exit"],       0, 0, 0, 0),
    "TRANSFERRED": (TO_SAME,  -1,                    LEAVE_NONE,       CR["transferred"],      1, 0, 0, 0),
}
_tab = np.array([_ROWS[n] for n in EVENT_NAMES], dtype=np.int64)
EV_DEST_KIND = _tab[:, 0].copy()
EV_FIXED_STATE = _tab[:, 1].copy()
EV_LEAVE = _tab[:, 2].copy()
EV_CEASE_REASON = _tab[:, 3].copy()
EV_COUNTS_START = _tab[:, 4].copy()
EV_CPP_START = _tab[:, 5].copy()
EV_RESET_EPI = _tab[:, 6].copy()
EV_PREV_PLUS = _tab[:, 7].copy()

# hazard channels: which events each state faces, and the parameter prefix of each (state, event) pair
_CARE_CHANNELS = (("MOVE", "care.move"), ("TO_ADOPTION", "care.to_adoption"), ("ADOPTED", "care.adopted"),
                  ("SGO_CAO", "care.sgo_cao"), ("REUNIFIED", "care.reunified"), ("LEFT_CARE", "care.left_care"),
                  ("OTHER_EXIT", "care.other_exit"), ("TRANSFERRED", "care.transferred"))
STATE_CHANNELS: dict[int, tuple[tuple[str, str], ...]] = {
    S.AT_HOME: (("ESCALATE", "cin.escalate"), ("ENTER_CARE", "cin.enter_care"), ("CASE_CLOSE", "cin.close")),
    S.EDGE_OF_CARE: (("ENTER_CARE", "cpp.enter_care"), ("DEESCALATE", "cpp.end")),
    S.RETURNED_HOME: (("ENTER_CARE", "returned.reenter"),),
    S.KINSHIP_ORDER: (("ENTER_CARE", "korder.breakdown"),),
}
for _s in S.CARE_STATES:
    STATE_CHANNELS[_s] = _CARE_CHANNELS
K_SLOTS = max(len(v) for v in STATE_CHANNELS.values())  # competing events per state (8)

EVENT_OF_SLOT = np.full((S.N_STATES, K_SLOTS), -1, dtype=np.int64)
for _s, _chs in STATE_CHANNELS.items():
    for _k, (_e, _ch) in enumerate(_chs):
        EVENT_OF_SLOT[_s, _k] = EV[_e]
CHANNELS = tuple(sorted({ch for chs in STATE_CHANNELS.values() for _, ch in chs}))

# destination states for entries and moves (PLACED_FOR_ADOPTION is reached only by TO_ADOPTION)
DEST_STATES = np.array([s for s in S.CARE_STATES if s != S.PLACED_FOR_ADOPTION], dtype=np.int64)
N_DEST = len(DEST_STATES)
