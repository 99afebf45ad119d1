"""The toy image shape and Dist search the library's model and promise tests share."""

import math

from classaware import SearchSettings

SHAPE = (3, 4, 4)  # tiny images: every public function runs on them in milliseconds
D = math.prod(SHAPE)
SCAN = dict(max_radius=2.0, step=0.1, tol=0.01)  # a coarse search, as keyword arguments
SEARCH = SearchSettings(**SCAN)
