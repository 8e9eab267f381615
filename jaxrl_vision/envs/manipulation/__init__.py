"""MJX manipulation tasks from pixels: `grasp` and `stack` (spec C.2, C.3)."""
