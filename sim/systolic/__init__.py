"""Golden models of the systolic accelerator: :mod:`.golden` (bit-exact program execution) and :mod:`.cycles`
(the analytic cycle model of the RTL)."""
