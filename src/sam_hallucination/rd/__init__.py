"""Layer 1, the mathematics of functions on R^d: test landscapes, SAM's update, its dynamics."""
