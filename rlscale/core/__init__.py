"""Pure logic of rlscale: no CLI, no terminal, no global state."""
