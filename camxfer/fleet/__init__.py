"""Running a fleet of cameras: the shared camera configuration and the per-camera tools."""
