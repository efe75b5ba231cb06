"""SendFleet's delivery events: received, stored before the answer, then applied."""
