"""Pure game rules: no I/O, no clock, randomness only from the seed kept in the state."""
