"""`python -m tvm_tinyml`: the same as the `tvm-tinyml` console script."""

import sys

from tvm_tinyml.cli import main

sys.exit(main())
