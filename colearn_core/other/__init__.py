"""colearn's ``colearn_other``: its demo helpers (:mod:`colearn_core.other.demo_utils`)."""
