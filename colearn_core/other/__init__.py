"""colearn's ``colearn_other``: helpers its examples import (the fraud data set,
:mod:`colearn_core.other.demo_utils`)."""
