"""Option texts shared by several commands (one wording, one set of values)."""

ALIGN_HELP = (
    "Face alignment: none, level (rotate so the eyes are level), eyes (also scale and shift the "
    "face so the eyes sit where FER-2013's do). On SFEW, eyes lost 0.5-2.8 points and level "
    "moved under 2 either way, so none is the default."
)
