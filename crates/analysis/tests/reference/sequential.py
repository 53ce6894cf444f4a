"""Reference values for cutover-analysis's mixture SPRT on error counts.

The log mixture likelihood ratio of a Beta(a, b) mixture over the canary's share p
of the errors, against the null p = rho, after c canary and e baseline errors:

    log M = betaln(a + c, b + e) - betaln(a, b) - c log(rho) - e log(1 - rho)

computed with scipy.special.betaln. Prints Rust tuples
(rho, a, b, canary errors, baseline errors, log M).
"""

import numpy as np
import scipy
from scipy.special import betaln

print(f"// scipy {scipy.__version__}")
for rho, a, b, c, e in [
    (0.1, 3.0, 27.0, 0, 0),
    (0.1, 3.0, 27.0, 5, 40),
    (0.1, 3.0, 27.0, 30, 120),
    (0.1, 3.0, 27.0, 2, 300),
    (0.5, 1.0, 1.0, 60, 40),
    (0.25, 2.5, 7.5, 1200, 3000),
    (0.1, 3.0, 27.0, 100000, 900000),
]:
    m = betaln(a + c, b + e) - betaln(a, b) - c * np.log(rho) - e * np.log(1 - rho)
    print(f"({rho!r}, {a!r}, {b!r}, {c}, {e}, {float(m)!r}),")
