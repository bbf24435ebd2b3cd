"""The Qt face of Zero Install Admin: thin widgets and models over ``core``."""
