"""Private implementation modules of ntk_core; import from ``ntk_core`` instead."""
