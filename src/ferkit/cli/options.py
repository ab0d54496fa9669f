"""Option texts shared by several commands (one wording, one set of values)."""

ALIGN_HELP = (
    "Face alignment: none, level (rotate so the eyes are level), eyes (also scale and shift the "
    "face so the eyes sit where FER-2013's do). Measured on SFEW: neither beats none."
)
