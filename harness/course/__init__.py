"""The teaching side: live lessons (lessons) and their verdicts computed from measurements (verdicts)."""
